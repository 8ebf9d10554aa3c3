"""hubstress: load-test JupyterHub deployments and micro-batching endpoints.

The engine (``hubstress_ext.engine``) owns every run; the CLI, magics, panel and notebooks are
thin front ends over the same run objects.
"""

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Jupyter server discovers the batching endpoint through this."""
    return [{"module": "hubstress_ext.batching.extension"}]


def load_ipython_extension(ipython) -> None:  # noqa: ANN001 - IPython's shell
    """``%load_ext hubstress_ext``: registers ``%hubstress`` / ``%%hubstress``."""
    from hubstress_ext.notebook.magics import HubstressMagics

    ipython.register_magics(HubstressMagics)


def panel(**values):  # noqa: ANN201 - lazy import keeps ipywidgets out of the CLI
    """The ipywidgets panel: options as form fields, Start/Stop, live chart, summary table."""
    from hubstress_ext.notebook.panel import panel as make_panel

    return make_panel(**values)
