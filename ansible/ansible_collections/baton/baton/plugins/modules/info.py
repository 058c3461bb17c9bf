#!/usr/bin/python
# What batond on this host runs, as facts.
from __future__ import annotations

DOCUMENTATION = r"""
module: info
short_description: Read batond's status, each service's history and listeners, as facts
description:
  - Sets the fact C(baton) from batond's control socket - the daemon, and for each service
    its state, live version, generations, listeners and release history.
  - Changes nothing; needs only Python's standard library on the host.
version_added: "0.1.0"
author: baton maintainers
options:
  service:
    description: Only this service (all of them when omitted).
    type: str
  socket:
    description: batond's control socket.
    type: path
    default: /run/baton/control.sock
  history:
    description: Include each service's release history.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reads only.
"""

EXAMPLES = r"""
- baton.baton.info:
- ansible.builtin.debug:
    msg: "web serves {{ baton.services.web.version }}"
"""

RETURN = r"""
ansible_facts:
  description: C(baton) with C(daemon) and C(services) (by name, each with C(state), C(version),
    C(generations), C(listeners) and C(history)).
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.baton.baton.plugins.module_utils.baton_api import BatonError, get, service_path


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str"),
            socket=dict(type="path", default="/run/baton/control.sock"),
            history=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        status = get(p["socket"], "/v1/status")
        services = {}
        for s in status.get("services", []):
            if p["service"] and s.get("name") != p["service"]:
                continue
            if p["history"]:
                s["history"] = get(p["socket"], service_path(s["name"]) + "/history").get("releases", [])
            services[s["name"]] = s
    except BatonError as e:
        module.fail_json(msg="baton: %s" % e, result=e.body)
    if p["service"] and p["service"] not in services:
        module.fail_json(msg="baton: no service named %s" % p["service"])
    module.exit_json(changed=False, ansible_facts={"baton": {"daemon": status.get("daemon", {}), "services": services}})


if __name__ == "__main__":
    main()
