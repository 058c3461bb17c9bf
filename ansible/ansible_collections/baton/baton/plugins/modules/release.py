#!/usr/bin/python
# Upgrade or roll back one service supervised by batond on this host.
from __future__ import annotations

DOCUMENTATION = r"""
module: release
short_description: Hand a service supervised by batond over to a release, without dropping a request
description:
  - Asks batond, over its control socket, to start the release, wait until it is ready,
    hand traffic over and drain the previous generation; or to roll back.
  - Blocks until the new generation is promoted or has failed. On failure the task fails
    with batond's reason, and the previous release keeps serving - with C(serial) and
    C(max_fail_percentage=0) a bad release stops the play at its first host.
  - Idempotent. A release is named by its version. When that version is live and
    promoted, nothing is done and C(changed) is false. A version that is starting, or in
    a service that is stopped or fatal, is started again.
  - Needs only Python's standard library on the host.
version_added: "0.1.0"
author: baton maintainers
options:
  service:
    description: The service, as named in batond's configuration.
    type: str
    required: true
  version:
    description: The release to promote. Required with O(state=promoted).
    type: str
  command:
    description: The release's command (argv), replacing the configured one for this release.
    type: list
    elements: str
  env:
    description: Environment for this release, over the configured one.
    type: dict
  state:
    description:
      - V(promoted) hands the service over to O(version).
      - V(rolled_back) hands it back to O(to), or to the release promoted before the live one.
    type: str
    choices: [promoted, rolled_back]
    default: promoted
  to:
    description:
      - With O(state=rolled_back), the version to return to. Without it every run rolls
        back once more; give it for an idempotent rollback.
    type: str
  socket:
    description: batond's control socket.
    type: path
    default: /run/baton/control.sock
  timeout:
    description: Seconds to wait for the outcome (readiness, progressive steps, and the drain with O(wait_drain)).
    type: int
    default: 600
  wait_drain:
    description: Return once the previous generation has drained, not at promotion.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports whether the release would change; batond is only asked for the status.
"""

EXAMPLES = r"""
- name: Upgrade web to v2, host by host
  hosts: web
  serial: 1
  max_fail_percentage: 0
  tasks:
    - baton.baton.release:
        service: web
        version: v2

- name: Roll back to v1
  baton.baton.release:
    service: web
    state: rolled_back
    to: v1
"""

RETURN = r"""
version:
  description: The version now live (on failure, the one that failed).
  type: str
  returned: always
from_version:
  description: The version that served before (in check mode, the one serving now).
  type: str
  returned: changed
generation:
  description: batond's number of the new generation.
  type: int
  returned: changed
duration_s:
  description: Seconds from the start of the handover to promotion.
  type: float
  returned: changed
drain_s:
  description: Seconds the previous generation took to drain, with O(wait_drain).
  type: float
  returned: when batond waited for the drain
steps:
  description: For a progressive handover, each step passed with its figures.
  type: list
  returned: when progressive
result:
  description: batond's whole answer (GET /v1/services/NAME, or the handover's result).
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.baton.baton.plugins.module_utils.baton_api import (
    BatonError,
    call,
    error_message,
    get,
    service_path,
)

# Service states in which the live version is promoted and serving.
SERVING = ("running", "baking", "upgrading")


def live_version(status):
    """The promoted version serving now, or None."""
    live = [g for g in status.get("generations", []) if g.get("state") == "live"]
    if not live or status.get("state") not in SERVING:
        return None
    return status.get("version")


def handover(module, target, body):
    p = module.params
    status, answer = call(p["socket"], "POST", target, body, timeout=p["timeout"])
    result = answer.get("result", {}) if isinstance(answer, dict) else {}
    if status == 200:
        out = {k: result[k] for k in ("version", "from_version", "generation", "duration_s", "drain_s", "steps") if k in result}
        module.exit_json(changed=True, result=result, **out)
    reason = result.get("reason") or error_message(answer, status)
    if result:
        serving = result.get("from_version") or "nothing"
        msg = "baton: %s of %s was not promoted: %s; %s keeps serving" % (
            result.get("version", p.get("version")), p["service"], reason, serving)
    else:
        msg = "baton: %s refused: %s" % (target, reason)
    module.fail_json(msg=msg, version=result.get("version", p.get("version")), result=answer)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str", required=True),
            version=dict(type="str"),
            command=dict(type="list", elements="str"),
            env=dict(type="dict"),
            state=dict(type="str", default="promoted", choices=["promoted", "rolled_back"]),
            to=dict(type="str"),
            socket=dict(type="path", default="/run/baton/control.sock"),
            timeout=dict(type="int", default=600),
            wait_drain=dict(type="bool", default=True),
        ),
        required_if=[("state", "promoted", ["version"])],
        mutually_exclusive=[("to", "version")],
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second")
    try:
        status = get(p["socket"], service_path(p["service"]), timeout=30)
    except BatonError as e:
        module.fail_json(msg="baton: service %s: %s" % (p["service"], e), result=e.body)
    current = live_version(status)
    wanted = p["version"] if p["state"] == "promoted" else p["to"]
    if wanted is not None and current == wanted:
        module.exit_json(changed=False, version=current, result=status)
    if module.check_mode:
        module.exit_json(changed=True, version=wanted or current, from_version=current, duration_s=0, result=status)
    wait = "?wait=drained" if p["wait_drain"] else ""
    try:
        if p["state"] == "promoted":
            body = {"version": p["version"]}
            if p["command"]:
                body["command"] = p["command"]
            if p["env"]:
                body["env"] = {k: str(v) for k, v in p["env"].items()}
            handover(module, service_path(p["service"]) + "/upgrade" + wait, body)
        body = {"to": p["to"]} if p["to"] else {}
        handover(module, service_path(p["service"]) + "/rollback" + wait, body)
    except BatonError as e:
        module.fail_json(msg="baton: %s" % e, result=e.body)


if __name__ == "__main__":
    main()
