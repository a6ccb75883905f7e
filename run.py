#!/usr/bin/env python3
"""tdmarket command line.

    python run.py --help              commands and scenarios
    python run.py cases               the built-in cases
    python run.py inspect CASE        summary tables and a drawing of a case (built-in name or folder)
    python run.py audit RUN_FOLDER    verify a run's audit log(s) and show who sent what to whom
    python run.py dashboard RUN_FOLDER  a page of a study (running or finished) in the browser
    python run.py SCENARIO [options]  run a market scenario (see scenarios/registry.py)

Bad input never gives a traceback: a CaseError (or an unknown case) prints
``error: <where>: <what>`` on stderr and the exit status is 2, as for a usage error.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback
from typing import Callable, NamedTuple

from scenarios.runs import add_run_arguments, start_ray_early

if __name__ == "__main__":  # a --runtime ray run starts Ray now, while the rest is imported
    start_ray_early(sys.argv[1:])

from agents.base import InfeasibleSetup, SolveError  # noqa: E402
from network.errors import CaseError  # noqa: E402
from scenarios import registry  # noqa: E402


class Command(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --------------------------------------------------------------------- cases


def _cases_args(p: argparse.ArgumentParser) -> None:
    pass


def _console():  # rich.console.Console
    """A console on stdout; 120 columns wide when stdout is not a terminal (pipes, logs, CI)."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    return console


def escape(text: object) -> str:
    """``text`` with rich markup characters escaped (ids and descriptions are data, not markup)."""
    from rich.markup import escape as _escape

    return _escape(str(text))


def _add_row(table, *cells: object) -> None:  # table: rich.table.Table
    table.add_row(*(escape(c) for c in cells))


def cmd_cases(args: argparse.Namespace) -> int:
    from rich.table import Table

    table = Table(title="Built-in cases (scenarios/data)")
    table.add_column("case", style="bold", no_wrap=True)
    table.add_column("description")
    for name, desc in registry.list_cases():
        _add_row(table, name, desc)
    _console().print(table)
    return 0


# ------------------------------------------------------------------- inspect


def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", help="a built-in case name (see 'cases') or the path of a case folder")
    add_run_arguments(p, seed=None)
    p.add_argument("--no-plot", action="store_true", help="print the tables only; write no run folder")


def _fmt(v: float) -> str:
    if v != v:  # NaN
        return "-"
    if v in (float("inf"), float("-inf")):
        return "none" if v > 0 else "-inf"
    return f"{v:g}"


def case_tables(case) -> list:  # list[rich.table.Table]
    """The tables of ``inspect``: the case summary, one row per grid, one row per owner role."""
    from rich.table import Table

    from network.model import ROLES, TRANSMISSION

    unit = case.power_unit
    summary = Table(title=f"Case {case.name}", show_header=False)
    summary.add_column("item", style="bold")
    summary.add_column("value", justify="right")
    for k, v in case.summary().items():
        _add_row(summary, str(k), str(v))

    def assets(grid: str) -> tuple[str, str]:
        us = [u for u in case.units if u.grid == grid and u.kind != "main_grid"]
        ds = [d for d in case.loads if d.grid == grid]
        return f"{len(us)} ({sum(u.p_max for u in us):.6g})", f"{len(ds)} ({sum(d.p_max for d in ds):.6g})"

    def vrange(lims: list[float]) -> str:
        return f"{min(lims):g}-{max(lims):g}"

    grids = Table(title="Grids")
    for col in ("grid", "kind", "nodes", "lines", "head", "PCC", "V (pu)", f"import ({unit})",
                f"units ({unit})", f"loads ({unit})"):
        grids.add_column(col, justify="right" if col in ("nodes", "lines") else "left", overflow="fold")
    t = case.transmission
    if t is not None:
        _add_row(grids, TRANSMISSION, "DC", str(t.n_buses), str(t.n_lines), f"ref {t.ref_bus}", "",
                      vrange([b.v_min for b in t.buses] + [b.v_max for b in t.buses]), "", *assets(TRANSMISSION))
    for f in case.feeders.values():
        imp = "none" if f.import_min == -float("inf") and f.import_max == float("inf") else \
            f"{_fmt(f.import_min)}..{_fmt(f.import_max)}"
        _add_row(grids, f.id, f"{f.n_phases}-ph", str(f.n_nodes), str(f.n_lines), f.head, f.pcc_bus or "",
                      vrange([n.v_min for n in f.nodes] + [n.v_max for n in f.nodes]), imp, *assets(f.id))

    owners = Table(title="Owners by role")
    for col in ("role", "n", "owners", f"units ({unit})", f"loads ({unit})"):
        owners.add_column(col, justify="right" if col == "n" else "left")
    for role in ROLES:
        os_ = case.owners_with_role(role)
        if not os_:
            continue
        us = [u for o in os_ for u in case.units_of(o.id)]
        ds = [d for o in os_ for d in case.loads_of(o.id)]
        _add_row(owners, role, str(len(os_)), ", ".join(o.id for o in os_),
                       f"{len(us)} ({sum(u.p_max for u in us):g})", f"{len(ds)} ({sum(d.p_max for d in ds):g})")
    return [summary, grids, owners]


def cmd_inspect(args: argparse.Namespace) -> int:
    case = registry.load_case(args.case)
    console = _console()
    if case.description:
        console.print(f"[bold]{escape(case.name)}[/bold]: {escape(case.description)}")
    console.print(f"units: count (capacity, main grid excluded); loads: count (peak), in {case.power_unit}")
    for table in case_tables(case):
        console.print(table)
    if args.no_plot:
        return 0
    from scenarios.plots import draw_case
    from scenarios.runs import RunFolder

    folder = RunFolder.create(f"inspect-{case.name}", args.out)
    folder.write_manifest("inspect", {"case": args.case})
    folder.write_json("summary.json", case.summary())
    png = folder.write_png("grid.png", draw_case(case))
    console.print(f"wrote {png}", markup=False, highlight=False)
    return 0


def _study_args(p: argparse.ArgumentParser) -> None:
    from scenarios.study import add_arguments

    add_arguments(p)


def cmd_study(args: argparse.Namespace) -> int:
    from scenarios.study import run

    return run(args)


# --------------------------------------------------------------------- audit


def _audit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_folder", help="a run folder (its audit.jsonl, or audit/*.jsonl.gz of a sweep) or one log file")
    p.add_argument("--quiet", action="store_true", help="verify only; print no tables")


def cmd_audit(args: argparse.Namespace) -> int:
    from coordinator.audit import main as audit

    return audit(args.run_folder, quiet=args.quiet)


def _import_args(p: argparse.ArgumentParser) -> None:
    from scenarios.import_case import add_arguments

    add_arguments(p)


def cmd_import(args: argparse.Namespace) -> int:
    from scenarios.import_case import run

    return run(args)


def _make_case_args(p: argparse.ArgumentParser) -> None:
    from scenarios.make_case import add_arguments

    add_arguments(p)


def cmd_make_case(args: argparse.Namespace) -> int:
    from scenarios.make_case import run

    return run(args)


def _dashboard_args(p: argparse.ArgumentParser) -> None:
    from scenarios.dashboard.server import add_arguments

    add_arguments(p)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from scenarios.dashboard.server import run

    return run(args)


COMMANDS: dict[str, Command] = {
    "import": Command("a MATPOWER file, a pandapower network or an OpenDSS feeder (.dss) as a case folder",
                      _import_args, cmd_import),
    "make-case": Command("a T&D case from a transmission grid and N copies of feeders (tso-dso), or N tes feeders",
                         _make_case_args, cmd_make_case),
    "study": Command("a strategic study from a TOML file (scenarios/studies/): days in the Mesa shell, market-power "
                     "metrics, Parquet tables and plots (--resume)", _study_args, cmd_study),
    "dashboard": Command("a page of a study's run folder, running or finished (Mesa SolaraViz): prices, profits, "
                         "markups and metrics per day with a day slider", _dashboard_args, cmd_dashboard),
    "cases": Command("list the built-in cases", _cases_args, cmd_cases),
    "inspect": Command("summarise a case (tables) and draw its grid (PNG in a run folder)", _inspect_args,
                       cmd_inspect),
    "audit": Command("verify a run's audit log(s) (hash chain, every message against the policy and schemas) and "
                     "show who sent what to whom; exit 1 at the first offending line", _audit_args, cmd_audit),
}


# ---------------------------------------------------------------------- main


def _selected(argv: list[str]) -> str | None:
    """The command or scenario named on the command line (the first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser. Only the selected scenario's module is imported (to add its options)."""
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="tdmarket: multi-agent simulation of coordinated transmission-distribution electricity "
                    "markets. Scenarios run a market simulation and write a run folder (results/ by default); "
                    "commands look at the data. 'run.py NAME --help' shows the options of each.",
        epilog="Bad input (a CaseError) exits with status 2 and a one-line message naming file, row and column.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="scenarios and commands")
    chosen = _selected(argv or [])
    for name, entry in registry.SCENARIOS.items():
        p = sub.add_parser(name, help=f"[scenario] {entry.description}", description=entry.description)
        if name == chosen:
            mod = registry.load_scenario(name)
            add_run_arguments(p)
            if callable(getattr(mod, "add_arguments", None)):
                mod.add_arguments(p)
            p.set_defaults(handler=mod.run)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(handler=cmd.run)
    return parser


EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _folders_since(n: int) -> list:
    from scenarios.runs import ACTIVE

    return [f for f in ACTIVE[n:] if f.status is not None]


def _finish_folders(folders: list, status: str, error: str | None = None) -> None:
    """Mark the run folders made by this command complete, failed or interrupted (in their manifests)."""
    for folder in folders:
        if folder.status == "running":
            folder.finish(status, error)


def _kept(folders: list) -> str:
    """What the run folders of this command hold: for a failure that cut a run short."""
    parts = []
    for f in folders:
        files = f.files()
        parts.append(f"{f.path} kept {', '.join(files[:6])}{', ...' if len(files) > 6 else ''}" if files
                     else f"{f.path} kept nothing")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit status: 0 done, 2 bad input, 1 a failure of the run or of the environment
    (a solver, the cluster, the disk), 130 interrupted. Every failure is one line on stderr; set
    ``TDMARKET_DEBUG=1`` to get the traceback as well."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from scenarios.runs import ACTIVE

    first = len(ACTIVE)
    status, error = "failed", None
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if getattr(args, "handler", None) is None:
            parser.print_help(sys.stderr)
            return EXIT_BAD_INPUT
        rc = int(args.handler(args) or 0)
        status = "complete" if rc == 0 else "failed"
        error = None if rc == 0 else f"exit status {rc}"
        return rc
    except (CaseError, InfeasibleSetup) as exc:
        error = _one_line(exc)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SolveError as exc:
        error = _one_line(exc)
        print(f"solver error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted (SIGINT)"
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # the output folder, a full disk, the cluster's sockets
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        error = f"{where}{exc.strerror or _one_line(exc)}"
        if exc.errno == errno.ENOSPC:
            error = f"disk full: {error}"
            kept = _kept(_folders_since(first))
            if kept:
                error += f"; run folder {kept}"
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the one place where anything becomes one line
        if os.environ.get("TDMARKET_DEBUG"):
            traceback.print_exc()
        error = f"{type(exc).__name__}: {_one_line(exc)}"
        print(f"error: {error} (TDMARKET_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_FAILED
    finally:
        _finish_folders(_folders_since(first), status, error)


if __name__ == "__main__":
    sys.exit(main())
