"""The service, as the routes of both apps receive it: the `ServiceDep`
dependency; `ready` refuses work (503) until its models are loaded, and while
it stops. Routes call `ready` after validating their request, so that a bad
request is a 400 whatever the state of the server."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from runtime.server.errors import ServiceUnavailable
from runtime.service import Service, ServiceState


def current_service(request: Request) -> Service:
    """The service of the app the request reached (each app holds it)."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(current_service)]


def ready(service: Service) -> Service:
    if service.state == ServiceState.STARTING:
        raise ServiceUnavailable("the server is still loading its models; retry shortly")
    if service.state == ServiceState.FAILED:
        raise ServiceUnavailable(f"the server failed to start: {service.failure}")
    if service.state != ServiceState.READY:
        raise ServiceUnavailable("the server is shutting down")
    return service
