"""process_request that raises when the page asks for `?at=process_request`."""

from raising import stop, wanted


def process_request(request):
    if kind := wanted(request.arguments, "process_request"):
        stop(kind)
    return {}
