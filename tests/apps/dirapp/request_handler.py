def process_request(request):
    return {"from_request_handler": request.path}
