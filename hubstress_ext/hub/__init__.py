"""JupyterHub client and the hub load scenarios (stress-test, activity-stress-test, purge)."""
