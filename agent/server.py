"""The agent's HTTP routes (Flask): thin adapters from the wire protocol to ``HostAgent`` calls.

``create_app(hosts)`` builds an app serving every host in ``hosts`` under ``/hosts/<name>``.
Besides commands it serves volume files and their truth, the VMs running on each host, pools
online/offline, the simulated guests' write rate and the fault hook. Every answer is JSON; every
error answer is ``{"error": text}`` with the status of the
``AgentError`` raised (400 bad input, 404 unknown host/volume/command, 409 conflict, 503
stopping) or of werkzeug's HTTP error (404 unknown path, 405 wrong method). The protocol is
documented in ``docs/agent-protocol.md``. ``POST``/``GET`` of commands are answered in front of
Flask (``command_routes``), with the same answers.
"""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from agent.command_routes import command_routes, find_host, parse_wait
from agent.errors import AgentError, InvalidRequest
from agent.host import HostAgent

log = logging.getLogger(__name__)


def _body():
    """The decoded JSON body, or ``None`` when it is absent or malformed (validation says 400)."""
    return request.get_json(force=True, silent=True)


def _flag(name: str) -> bool:
    """A query flag such as ``?checksum=1`` (also ``true``/``yes``)."""
    return request.args.get(name, "").lower() in ("1", "true", "yes")


def _wait() -> float:
    """``?wait=SECONDS`` (see ``command_routes.parse_wait``)."""
    return parse_wait(request.args.get("wait"))


def _count(name: str) -> int:
    value = request.args.get(name, "0")
    if not value.isdigit():
        raise InvalidRequest(f"query parameter '{name}' must be a non-negative integer, got {value!r}")
    return int(value)


def create_app(hosts: dict[str, HostAgent]) -> Flask:
    """A Flask app serving the given host agents (keyed by host name)."""
    app = Flask("agent")
    app.json.sort_keys = False

    def host(name: str) -> HostAgent:
        return find_host(hosts, name)

    @app.errorhandler(AgentError)
    def agent_error(exc: AgentError):
        return jsonify(error=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify(error=f"{exc.name}: {exc.description}"), exc.code

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return jsonify(error=f"internal agent error: {exc!r}"), 500

    @app.get("/hosts")
    def list_hosts():
        return jsonify(hosts=sorted(hosts))

    @app.get("/hosts/<name>")
    def host_status(name: str):
        return jsonify(host(name).status())

    @app.post("/hosts/<name>/volumes")
    def create_volume(name: str):
        answer, created = host(name).create_volume(_body())
        return jsonify(answer), 201 if created else 200

    @app.get("/hosts/<name>/volumes/<volume_id>")
    def locate_volume(name: str, volume_id: str):
        return jsonify(host(name).locate_volume(volume_id, checksum=_flag("checksum")))

    @app.get("/hosts/<name>/volumes/<volume_id>/writes")
    def volume_writes(name: str, volume_id: str):
        return jsonify(host(name).volume_writes(volume_id, since=_count("since")))

    @app.get("/hosts/<name>/vms")
    def list_vms(name: str):
        return jsonify(vms=host(name).list_vms())

    @app.post("/hosts/<name>/vms")
    def register_vm(name: str):
        vm, created = host(name).register_vm(_body())
        return jsonify(vm), 201 if created else 200

    @app.get("/hosts/<name>/vms/<vm_name>")
    def get_vm(name: str, vm_name: str):
        return jsonify(host(name).vm(vm_name))

    @app.delete("/hosts/<name>/vms/<vm_name>")
    def remove_vm(name: str, vm_name: str):
        return jsonify(host(name).remove_vm(vm_name))

    @app.get("/hosts/<name>/pools")
    def list_pools(name: str):
        return jsonify(pools=host(name).list_pools())

    @app.post("/hosts/<name>/pools/offline")
    def pool_offline(name: str):
        return jsonify(host(name).set_pool_online(_body(), online=False))

    @app.post("/hosts/<name>/pools/online")
    def pool_online(name: str):
        return jsonify(host(name).set_pool_online(_body(), online=True))

    @app.post("/hosts/<name>/guest")
    def set_guest(name: str):
        return jsonify(host(name).set_guest(_body()))

    @app.post("/hosts/<name>/commands")
    def submit_command(name: str):
        wait = _wait()
        record, created = host(name).submit_command(_body(), wait)
        return jsonify(record), 202 if created else 200

    @app.get("/hosts/<name>/commands/<command_id>")
    def get_command(name: str, command_id: str):
        return jsonify(host(name).command(command_id, _wait()))

    @app.post("/hosts/<name>/commands/<command_id>/abort")
    def abort_command(name: str, command_id: str):
        return jsonify(host(name).abort_command(command_id))

    @app.get("/hosts/<name>/faults")
    def list_faults(name: str):
        return jsonify(faults=host(name).list_faults())

    @app.post("/hosts/<name>/faults")
    def add_fault(name: str):
        return jsonify(host(name).add_fault(_body())), 201

    @app.delete("/hosts/<name>/faults")
    def clear_faults(name: str):
        return jsonify(cleared=host(name).clear_faults())

    # The two command routes of every migration skip Flask's dispatch (same answers, less CPU);
    # the routes below stay for the URL map, other methods (405) and HEAD.
    app.wsgi_app = command_routes(app.wsgi_app, hosts)
    return app
