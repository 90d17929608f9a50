"""``make demo``: JIM with 1,000 people from an HR file, provisioned to a directory.

:mod:`demo.run` does it all (``python -m demo``); :mod:`demo.data` writes the HR file,
:mod:`demo.directory` starts the target (the demo's own slapd, or a CSV file),
:mod:`demo.cycle` configures JIM and runs the first cycle, :mod:`demo.processes`
supervises the web server and the workers. ``demo/ldap.yaml`` and ``demo/csv.yaml``
are the configurations it applies. Its data lives in ``.demo/`` in the project.
"""
