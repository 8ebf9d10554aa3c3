"""``hubstress capacity``: the most load a hub or an endpoint takes within its SLO, and what binds it.

A run made of runs: ``knob`` reads ``--vary`` and ``--grid``, ``search`` decides which load to
probe next (bracket, then bisect, then repeat near the boundary), ``answer`` turns the probes
into the capacity, the binding rule and the shape, and ``run`` drives ordinary runs of the
chosen scenario as probes. Nothing here knows a scenario: a scenario's Run class offers the
hooks (a shared target, settings outside its options, a reference load).
"""
