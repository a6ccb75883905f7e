"""The tested package versions: freeze an environment, and write or check ``constraints.txt``.

    python3 .ci/versions.py freeze > FILE          # name==version of tdmarket[dev]'s whole dependency closure
    python3 .ci/versions.py write FREEZE...        # constraints.txt from one freeze per Python (3.11, 3.12, ...)
    python3 .ci/versions.py diff                   # this environment against constraints.txt

``constraints.txt`` pins every package that ``pip install -e ".[dev]"`` brings in, at the
versions the suite was run with; where two Pythons resolve differently (numpy 2.5 needs 3.12,
Mesa 3.5 too) each pin carries a ``python_version`` marker. The README's commands install with
``-c constraints.txt``; ``.ci/test-newest`` installs without it, runs the suite and shows what
moved, on purpose. Only the standard library is used (with ``scenarios/versions.py``).
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scenarios.versions import CONSTRAINTS, differences, norm  # noqa: E402  (standard library only)
TOOLING = ("pip", "setuptools", "wheel")
HEADER = """\
# The package versions the test suite was run with (see .ci/versions.py and .ci/test-newest).
# Installed by the README's commands: python3 -m pip install -c constraints.txt -e ".[dev]"
# Regenerate: .ci/test-newest --update (fresh virtual environments, newest allowed versions, suite run).
"""


def _marker_ok(marker: str, extras: set[str]) -> bool:
    """Evaluate a requirement marker without third-party packages (extras and python/platform markers)."""
    try:
        from packaging.markers import Marker  # available wherever pip is, but not guaranteed importable
    except ImportError:  # pragma: no cover - conservative: keep the requirement
        return True
    m = Marker(marker)
    return any(m.evaluate({"extra": e}) for e in (extras or {""}) | {""})


def closure(root: str = "tdmarket", extras: tuple[str, ...] = ("dev",)) -> dict[str, str]:
    """``{name: version}`` of ``root[extras]`` and everything it requires, as installed here."""
    seen: dict[str, str] = {}
    todo: list[tuple[str, set[str]]] = [(root, set(extras))]
    while todo:
        name, ex = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        key = norm(dist.metadata["Name"])
        if key in seen and not ex:
            continue
        seen[key] = dist.version
        for req in dist.requires or []:
            m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?[^;]*(;(.*))?$", req)
            if not m:
                continue
            if m.group(4) and not _marker_ok(m.group(4), ex):
                continue
            sub = {e.strip() for e in (m.group(2) or "[]")[1:-1].split(",") if e.strip()}
            todo.append((m.group(1), sub))
    seen.pop(norm(root), None)
    for tool in TOOLING:  # installer tooling: pinned by nobody (and -c would clash with build isolation)
        seen.pop(tool, None)
    return dict(sorted(seen.items()))


def _read_freeze(path: str) -> tuple[str, dict[str, str]]:
    lines = Path(path).read_text().splitlines()
    py = lines[0].removeprefix("# python ").strip()
    pins = dict(line.split("==", 1) for line in lines[1:] if "==" in line)
    return py, pins


def write(freezes: list[str]) -> str:
    by_py = dict(_read_freeze(f) for f in freezes)
    names = sorted({n for pins in by_py.values() for n in pins})
    out = [HEADER.rstrip(), f"# tested on Python {', '.join(sorted(by_py))}"]
    for n in names:
        vs = {py: pins.get(n) for py, pins in by_py.items()}
        if len(set(vs.values())) == 1:
            out.append(f"{n}=={next(iter(vs.values()))}")
        else:
            for py, v in sorted(vs.items()):
                if v is not None:
                    out.append(f'{n}=={v}; python_version == "{py}"')
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("freeze", "write", "diff"):
        print(__doc__.strip().splitlines()[2:5] and __doc__, file=sys.stderr)
        return 2
    if argv[0] == "freeze":
        print(f"# python {sys.version_info.major}.{sys.version_info.minor}")
        for n, v in closure().items():
            print(f"{n}=={v}")
    elif argv[0] == "write":
        CONSTRAINTS.write_text(write(argv[1:]))
        print(f"wrote {CONSTRAINTS}")
    else:
        d = [(n, have, want) for n, (have, want) in differences().items()]
        for n, have, want in d:
            print(f"{n:30s} installed {have or '-':14s} constraints {want}")
        print(f"{len(d)} package(s) differ from {CONSTRAINTS.name}" if d else f"all pins of {CONSTRAINTS.name} match")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
