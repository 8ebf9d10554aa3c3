"""A throwaway real JupyterHub on loopback, for newcomers, demos and integration tests."""

from hubstress_ext.sandbox.hub import Sandbox, SandboxError

__all__ = ["Sandbox", "SandboxError"]
