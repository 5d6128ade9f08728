"""The Tornado front end: routes, HTTP handlers, the websocket, listening sockets.

The only package that imports tornado. It translates HTTP into calls on the
framework-neutral `ServerCore` and back.
"""
