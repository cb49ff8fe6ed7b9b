"""End-to-end tests of the runnable inference server (``examples/inference_server``) over real
sockets: the app as a subprocess on uvicorn with a real Redis, a worker written as the reference's
(sync ``websocket-client``, a thread per request), and an SSE client that parses the event stream
line by line as the website's ``chat_stream.ts`` does."""
