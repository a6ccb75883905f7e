"""The named pandapower example networks, imported by name.

One job: ``PANDAPOWER_CASES`` (the networks the project uses), loading a
``pandapower.networks`` network once (``load_pandapower_network`` hands out
fresh copies) and ``import_pandapower_case``, which picks the importer for each
(transmission for ``case24_ieee_rts``, single-phase feeder for ``case33bw``,
three-phase LV feeder for ``ieee_european_lv_asymmetric``). pandapower is
imported only here, and only when a network is loaded.
"""
from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from ..errors import CaseError
from ..model import Case
from .pandapower_feeders import from_pandapower_feeder, from_pandapower_lv_asymmetric
from .pandapower_transmission import from_pandapower_transmission


PANDAPOWER_CASES = ("case24_ieee_rts", "case33bw", "ieee_european_lv_asymmetric")


@lru_cache(maxsize=None)
def _pandapower_network(name: str) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandapower.networks as pn

        fn = getattr(pn, name, None)
        if fn is None or name.startswith("_") or not callable(fn):
            raise CaseError(f"unknown pandapower network {name!r}")
        return fn()


def load_pandapower_network(name: str) -> Any:
    """A fresh copy of ``pandapower.networks.<name>()`` (the loaded network is cached)."""
    return copy.deepcopy(_pandapower_network(name))


@lru_cache(maxsize=None)
def import_pandapower_case(name: str) -> Case:
    """Import one of the pandapower example networks by name (see ``PANDAPOWER_CASES``).

    The result is cached (a :class:`Case` is immutable).
    """
    if name not in PANDAPOWER_CASES:
        raise CaseError(f"unknown pandapower case {name!r}; known: {', '.join(PANDAPOWER_CASES)}")
    net = _pandapower_network(name)  # the importers only read the network
    if name == "case24_ieee_rts":
        return from_pandapower_transmission(net, name)
    if name == "case33bw":
        return from_pandapower_feeder(net, name)
    return from_pandapower_lv_asymmetric(net, name)
