"""The ``tso-dso`` protocol's coordinator side: ``policy`` (who may send what), ``setup`` (settings, roles, hosts),
``hosts`` (messages to agent calls), ``protocol`` (the message sequence and the Benders loop), ``results``,
``benchmarks`` (centralized problems for the analyst)."""
