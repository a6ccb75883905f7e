"""The dashboard page: Mesa's SolaraViz around :class:`~scenarios.dashboard.model.StudyReplay`.

Served by ``run.py dashboard RUN_FOLDER`` (``solara run scenarios.dashboard.app``, the folder in the environment
variable ``TDMARKET_DASHBOARD_RUN``). Mesa's controls step the replay (Step, Play, Reset); the page's own
components show the study, a day slider and the selected day's figures, and the figures per day: prices,
profits and markups per agent, the market-power metrics. While the study runs, the page re-reads the run
folder every few seconds and follows its newest day.
"""
from __future__ import annotations

import html

import solara
from mesa.visualization import SolaraViz
from mesa.visualization.utils import force_update, update_counter

from . import figures
from .model import StudyReplay
from .tables import DashboardError, Metric, fmt

POLL_S = 2.0  # how often a running study's folder is re-read
PROFIT = Metric("profit", "profit $", "{:.2f}")
TABLE_STYLE = ("<style>.tdm-table{border-collapse:collapse;font-size:13px;margin:4px 0 10px}"
               ".tdm-table th,.tdm-table td{padding:2px 10px;border-bottom:1px solid #e0e0e0}"
               ".tdm-table td.num{text-align:right;font-variant-numeric:tabular-nums}"
               ".tdm-table th{text-align:left;color:#555;font-weight:600}</style>")


def _table(header: list[str], rows: list[list[str]], label: str) -> str:
    """An HTML table; cells after the first are numbers (right-aligned)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td{' class=num' if i else ''}>{html.escape(c)}</td>" for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<table class="tdm-table" aria-label="{label}"><tr>{head}</tr>{body}</table>'


def day_table(model: StudyReplay) -> str:
    """The selected day's prices and metrics (strategic, and competitive where the tables hold it)."""
    t, row = model.tables, model.tables.day_row(model.day)
    comp = any(m.comp for m in [*t.prices, *t.metrics])
    rows = []
    for m in [*t.prices, *t.metrics]:
        label = f"{m.label} {t.price_unit}" if m in t.prices else m.label
        rows.append([label, fmt(m, row[m.column])]
                    + ([fmt(m, row[m.comp]) if m.comp and m.comp in row else ""] if comp else []))
    return _table(["figure", "strategic", *(["competitive"] if comp else [])], rows, "day figures")


def agent_table(model: StudyReplay) -> str:
    """The selected day's figures per agent (those with a strategy of their own, else all)."""
    rows = model.tables.agents_of(model.day)
    if "strategy" in rows and (rows["strategy"] != "case-prices").any():
        rows = rows[rows["strategy"] != "case-prices"]
    markup = Metric("markup", "markup", "{:.4f}" if model.info.protocol == "tes" else "{:.2f}")
    comp = "profit_comp" in rows
    out = [[str(r["agent"]), fmt(PROFIT, r.get("profit")), fmt(markup, r.get("markup"))]
           + ([fmt(PROFIT, r["profit_comp"])] if comp else []) for _, r in rows.iterrows()]
    return _table(["agent", "profit $", f"markup {model.tables.price_unit}",
                   *(["competitive profit $"] if comp else [])], out, "agent figures")


@solara.component
def Overview(model: StudyReplay):
    """The study, the day slider and the selected day's figures per agent."""
    update_counter.get()
    info, days = model.info, model.days

    def follow(cancel):  # a running study: re-read its folder, stay on its newest day if we were there
        while info.status == "running" and not cancel.wait(POLL_S):
            was_last = model.day == model.last_day
            if model.refresh():
                if was_last and model.last_day is not None:
                    model.goto(model.last_day)
                force_update()

    solara.use_thread(follow, dependencies=[id(model), info.status], intrusive_cancel=False)
    planned = f" of {info.days_planned}" if info.days_planned else ""
    solara.HTML(tag="div", unsafe_innerHTML=(
        f'{TABLE_STYLE}<h2 class="tdm-study">{html.escape(info.name)}</h2>'
        f"<p><code>{html.escape(info.protocol)}</code> study, <b>{html.escape(info.status)}</b>: {len(days)}{planned}"
        f" day(s) written<br><small><code>{html.escape(str(info.folder))}</code></small></p>"))
    if model.day is None:
        solara.Info("no day written yet: the page follows the study as it runs")
        return
    solara.SliderInt("day", value=model.day, min=days[0], max=days[-1], thumb_label="always",
                     on_value=lambda d: (model.goto(d), force_update()))
    solara.HTML(tag="div", unsafe_innerHTML=f'<h3 class="tdm-day">Day {model.day}</h3>{agent_table(model)}')


@solara.component
def DayFigures(model: StudyReplay):
    """The selected day's prices and market-power metrics."""
    update_counter.get()
    if model.day is not None:
        solara.HTML(tag="div", unsafe_innerHTML=f"<h3>Day {model.day}: prices and metrics</h3>{day_table(model)}")


def _figure(make):
    @solara.component
    def Figure(model: StudyReplay):
        update_counter.get()
        fig = make(model.tables, model.day)
        solara.FigureMatplotlib(fig, dependencies=[id(model), model.day, model.tables_version], format="png",
                                dpi=90)

    Figure.__name__ = make.__name__.capitalize()
    return Figure


Prices, Profits, Markups, Metrics = (_figure(f) for f in (figures.prices, figures.profits, figures.markups,
                                                           figures.metrics))


def _replay() -> StudyReplay | str:
    try:
        return StudyReplay()
    except DashboardError as exc:
        return str(exc)


@solara.component
def Page():
    """One replay per browser session."""
    model = solara.use_memo(_replay, [])
    if isinstance(model, str):
        solara.Error(model)
        return
    SolaraViz(model, components=[Overview, DayFigures, Prices, Profits, Markups, Metrics],
              model_params={"run_folder": str(model.folder)}, play_interval=500,
              name=f"tdmarket dashboard: {model.info.name} ({model.info.protocol})")
