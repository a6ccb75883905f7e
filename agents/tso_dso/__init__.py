"""The ``tso-dso`` agents: ``tso`` (the TSO agent) with its problems in ``day_ahead``, ``joint_master`` (the
Benders master), ``master`` (the big-M KKT formulation, for the centralized benchmark) and ``realtime``;
``dso`` (the real-time DSO of an area) with ``area_result`` (what its evaluations give); ``participants``
(DER managers and load aggregators, and their resources)."""
