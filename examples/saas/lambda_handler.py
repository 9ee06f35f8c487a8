"""AWS Lambda entry point: ``examples.saas.lambda_handler.handler``.

The same app as under uvicorn. Lifespan startup runs once per container; the DynamoDB
session and caches stay warm across invocations.
"""

from examples.saas.app import app
from lift_asgi.aws import handler as lambda_handler

handler = lambda_handler(app)
