"""hubstress: load-test JupyterHub deployments and micro-batching endpoints.

The engine (``hubstress_ext.engine``) owns every run; the CLI, magics, panel and notebooks are
thin front ends over the same run objects.
"""

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Jupyter server discovers the batching endpoint through this."""
    return [{"module": "hubstress_ext.batching.extension"}]
