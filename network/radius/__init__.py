"""The pyrad side of RADIUS: the dictionaries the project ships, a client (Access-Request,
Accounting-Request), an RFC 5176 sender (CoA, Disconnect), a NAS simulator and a load generator.

Pure transport: nothing here imports Django, so every module also runs as a plain script."""
