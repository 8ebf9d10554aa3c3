"""JupyterHub config for the sandbox; every knob arrives through HUBSTRESS_SANDBOX_* variables.

Loaded by ``jupyterhub -f`` (``c`` is injected by traitlets). The service token is read from
the environment and removed from it, so no child process (proxy, servers) inherits it.
"""

import json
import os
import sys
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821

env = os.environ
workdir = Path(env["HUBSTRESS_SANDBOX_DIR"])
bindir = Path(sys.executable).parent
token = env.pop("HUBSTRESS_SANDBOX_TOKEN")
no_metrics_token = env.pop("HUBSTRESS_SANDBOX_NO_METRICS_TOKEN", None)

c.JupyterHub.bind_url = f"http://127.0.0.1:{env['HUBSTRESS_SANDBOX_PORT']}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env["HUBSTRESS_SANDBOX_HUB_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env['HUBSTRESS_SANDBOX_PROXY_API_PORT']}"
# the pure-Python proxy, with its upstream pool raised (see hubstress_ext/sandbox/proxy.py)
# (and an upstream timeout long enough for a slow spawn's progress stream)
c.ConfigurableHTTPProxy.command = [
    sys.executable,
    "-m",
    "hubstress_ext.sandbox.proxy",
    "--proxy-timeout",
    "900000",
]
c.JupyterHub.db_url = f"sqlite:///{workdir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(workdir / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(workdir / "jupyterhub.pid")
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.allow_named_servers = True
c.JupyterHub.cleanup_servers = True
c.JupyterHub.concurrent_spawn_limit = int(env.get("HUBSTRESS_SANDBOX_SPAWN_LIMIT", "100"))
c.JupyterHub.active_server_limit = int(env.get("HUBSTRESS_SANDBOX_ACTIVE_LIMIT", "0"))
c.JupyterHub.last_activity_interval = 600
# how long a spawn request waits before answering 202 (JupyterHub's default is 10 s)
# and the Retry-After range of a 429 from concurrent_spawn_limit (not a config trait: a setting;
# the hub truncates it to whole seconds)
c.JupyterHub.tornado_settings = {
    "slow_spawn_timeout": float(env.get("HUBSTRESS_SANDBOX_SLOW_SPAWN", "10")),
    "spawn_throttle_retry_range": tuple(json.loads(env.get("HUBSTRESS_SANDBOX_THROTTLE_RETRY", "[2, 5]"))),
}
c.JupyterHub.log_level = env.get("HUBSTRESS_SANDBOX_LOG_LEVEL", "INFO")

# The tool's identity: a service whose role has exactly the scopes hubstress uses.
SCOPES = [
    "admin:users",  # create/delete users, post activity
    "admin:servers",  # start/stop servers, read their state and progress
    "admin:groups",  # the marker group purge relies on
    "list:users",
    "list:groups",
    "access:servers",  # simulated sessions through the proxy
    "tokens",  # session-test: a token per simulated student
    "read:metrics",  # scrape /hub/metrics during a run
]
c.JupyterHub.services = [{"name": "hubstress", "api_token": token}]
c.JupyterHub.load_roles = [{"name": "hubstress-tool", "scopes": SCOPES, "services": ["hubstress"]}]
if no_metrics_token:  # the same scopes but read:metrics: how a run copes with a least-privilege token
    c.JupyterHub.services.append({"name": "hubstress-no-metrics", "api_token": no_metrics_token})
    c.JupyterHub.load_roles.append(
        {
            "name": "hubstress-no-metrics",
            "scopes": [s for s in SCOPES if s != "read:metrics"],
            "services": ["hubstress-no-metrics"],
        }
    )

c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 60
if env.get("HUBSTRESS_SANDBOX_SPAWNER", "real") == "sim":
    c.JupyterHub.spawner_class = "hubstress_ext.sandbox.simspawner.SimSpawner"
    c.SimSpawner.server_url = env["HUBSTRESS_SIM_URL"]
    if "HUBSTRESS_SIM_DELAY" in env:
        c.SimSpawner.start_delay = tuple(json.loads(env["HUBSTRESS_SIM_DELAY"]))
else:
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(workdir / "home" / "{username}")
    singleuser = bindir / "jupyterhub-singleuser"
    if singleuser.exists():
        c.Spawner.cmd = [str(singleuser)]
    c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []
    c.Spawner.env_keep = ["PATH", "PYTHONPATH", "LANG", "LC_ALL", "VIRTUAL_ENV"]
    if env.get("HUBSTRESS_SANDBOX_DEFAULT_URL"):
        c.Spawner.default_url = env["HUBSTRESS_SANDBOX_DEFAULT_URL"]
