"""Solar Protocol v1's day files as the server's tests write them: the header, and rows of yesterday and of
TODAY (the date tests/server/conftest.py's ``frozen_today`` holds the routes at)."""

from __future__ import annotations

import datetime as dt

HEADER = (
    "datetime,PV voltage,PV current,PV power L,PV power H,battery voltage,battery current,battery power L,"
    "battery power H,load voltage,load current,load power,battery percentage"
)


TODAY = dt.date.today()


YESTERDAY = TODAY - dt.timedelta(days=1)


T1, T2 = f"{TODAY} 07:40:12.694530", f"{TODAY} 07:42:12.875627"


Y1 = f"{YESTERDAY} 18:00:00.000001"


ROW_T1 = f"{T1},13.35,0.08,700.25,0.0,12.15,0.09,1.09,0.0,12.15,0.18,2.18,0.38"


ROW_T2 = f"{T2},13.33,0.07,0.0,0.0,12.09,0.08,0.96,0.0,12.09,0.23,2.78,0.36"


ROW_Y1 = f"{Y1},19.1,1.0,19.1,0.0,13.1,1.5,19.65,0.0,13.1,0.2,2.62,0.9"
