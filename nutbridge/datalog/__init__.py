"""The data log, one store: one CSV file per local day in Solar Protocol v1's format.

- ``format``: the columns (``Column``, in file order), v1's header, a Reading as a row, rows parsed from bytes,
  the day files' names;
- ``dayfiles``: a folder's day files on disk (listing, reading, the newest row's time) and ``DataLogError``;
- ``writer``: the sink (``DataLog``): rows appended, held for the flush window, torn writes ended;
- ``reader``: the day files parsed and kept (``DayCache``), with the rows the writer still holds after them;
- ``retention``: old day files removed.

Every other part reads and writes the log through these: the JSON API, the dashboard and the election by
``Column``; only the Solar Protocol v1 routes take the rows as v1's cells.
"""
