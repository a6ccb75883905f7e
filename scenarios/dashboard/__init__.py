"""``run.py dashboard RUN_FOLDER``: a Mesa SolaraViz page of a strategic study, running or finished.

tables.py reads a study's run folder; model.py replays it day by day (a Mesa model); figures.py draws
the figures; app.py is the page; server.py starts the solara server for ``run.py``.
"""
