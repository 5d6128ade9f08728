"""The session store: session state in Redis, so sessions outlive the process that runs them.

`snapshot` (Bokeh side: what changed in a document since its build, and putting it back),
`redis_store` (Redis side: keys, atomic scripts, deadlines, availability), `keeper` (what one
server process does with both: own, keep, take over, lose and let go of sessions).
"""
