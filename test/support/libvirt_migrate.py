#!/usr/bin/python3
"""Live-migrates a domain the way a python3-libvirt program does, for the
end-to-end tests (test/e2e/libvirt-migrate.test.ts).

    /usr/bin/python3 libvirt_migrate.py SOURCE_URI DEST_URI NAME [BANDWIDTH_MIB_S [API]]

Opens SOURCE_URI, looks NAME up, calls dom.migrateToURI3(DEST_URI, params,
VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER) with VIR_MIGRATE_PARAM_BANDWIDTH,
or with API `managed-v3` the older virDomainMigrate(dconn, VIR_MIGRATE_LIVE,
None, None, BANDWIDTH) that libvirt drives with the v3 procedures without
typed parameters, then opens DEST_URI and prints one JSON object on stdout: the destination
domain's state and reason, whether it is persistent, its completed job
statistics (dom.jobStats(VIR_DOMAIN_JOB_STATS_COMPLETED)), and the binding's
values of the constants to compare them with. A libvirt error
is printed as {"error": {"code", "domain", "message"}} with exit status 1.

Run it with Debian's /usr/bin/python3 (package python3-libvirt).
"""
import json
import sys

import libvirt


def main(argv):
    if len(argv) not in (4, 5, 6):
        print(__doc__, file=sys.stderr)
        return 2
    src_uri, dst_uri, name = argv[1], argv[2], argv[3]
    bandwidth = int(argv[4]) if len(argv) >= 5 else 100
    api = argv[5] if len(argv) == 6 else "p2p-params"
    # libvirt prints every error on stderr itself unless told otherwise: the JSON says it once.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        src = libvirt.open(src_uri)
        dom = src.lookupByName(name)
        if api == "managed-v3":
            dconn = libvirt.open(dst_uri)
            dom.migrate(dconn, libvirt.VIR_MIGRATE_LIVE, None, None, bandwidth)
            dconn.close()
        else:
            params = {libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: bandwidth}
            dom.migrateToURI3(dst_uri, params, libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER)
        src.close()

        dst = libvirt.open(dst_uri)
        moved = dst.lookupByName(name)
        state, reason = moved.state()
        out = {
            "state": state,
            "reason": reason,
            "persistent": bool(moved.isPersistent()),
            "uuid": moved.UUIDString(),
            "completed": moved.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED),
            # The binding's own values of the constants the test compares with.
            "constants": {
                k: getattr(libvirt, k)
                for k in (
                    "VIR_DOMAIN_RUNNING",
                    "VIR_DOMAIN_RUNNING_MIGRATED",
                    "VIR_DOMAIN_JOB_COMPLETED",
                    "VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN",
                )
            },
        }
        dst.close()
    except libvirt.libvirtError as e:
        print(json.dumps({"error": {"code": e.get_error_code(), "domain": e.get_error_domain(), "message": e.get_error_message()}}))
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
