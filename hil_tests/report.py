"""The technician's report: per board, a folder named by date and board holding junit.xml
(for CI and test-management tools), summary.txt (to read or print) and console.log."""
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

_RESULTS = {}   # board name -> [(test name, outcome, seconds, message)]
_KEY = "_hil_report_dirs"


def _board(item):
    callspec = getattr(item, "callspec", None)
    spec = callspec.params.get("board_spec") if callspec else None
    return spec


def note(item, rep):
    spec = _board(item)
    if spec is None:
        return
    name = item.originalname or item.name
    if rep.when == "call" or (rep.when == "setup" and not rep.passed) or \
            (rep.when == "teardown" and rep.failed):
        if rep.skipped:
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            outcome, message = "skipped", reason.replace("Skipped: ", "")
        elif rep.failed:
            outcome = "error" if rep.when != "call" else "failed"
            message = _message(rep)
        else:
            outcome, message = "passed", ""
        results = _RESULTS.setdefault(spec.name, [])
        results[:] = [r for r in results if not (r[0] == name and rep.when == "teardown")]
        results.append((name, outcome, rep.duration, message))


def _message(rep):
    crash = getattr(rep.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(rep.longrepr)
    return text.strip()


def write(config, specs):
    base = Path(config.getoption("report_dir", default=None) or "var/hil")
    stamp = config._hil_started.strftime("%Y-%m-%d_%H%M%S")
    written = []
    for spec in specs:
        results = _RESULTS.get(spec.name)
        if not results:
            continue
        folder = base / ("%s_%s" % (stamp, spec.name))
        folder.mkdir(parents=True, exist_ok=True)
        log = spec.info.get("console_log")
        if log and Path(log).exists():
            shutil.copy(log, folder / "console.log")
        log = spec.info.get("gateway_log")
        if log and Path(log).exists():
            shutil.copy(log, folder / "gateway.log")  # the suite's own gateway
        _junit(folder / "junit.xml", spec, results, config._hil_started)
        (folder / "summary.txt").write_text(_summary(spec, results, config._hil_started,
                                                     folder))
        written.append(str(folder))
    setattr(config, _KEY, written)


def written(config):
    return getattr(config, _KEY, [])


def _junit(path, spec, results, started):
    suite = ET.Element("testsuite", name="cityedge bench: %s" % spec.name,
                       tests=str(len(results)),
                       failures=str(sum(r[1] == "failed" for r in results)),
                       errors=str(sum(r[1] == "error" for r in results)),
                       skipped=str(sum(r[1] == "skipped" for r in results)),
                       time="%.3f" % sum(r[2] for r in results),
                       timestamp=started.isoformat(timespec="seconds"))
    props = ET.SubElement(suite, "properties")
    for key in ("device_id", "kind", "mac", "firmware", "port"):
        if spec.info.get(key) is not None:
            ET.SubElement(props, "property", name=key, value=str(spec.info[key]))
    for name, value in sorted(spec.info.get("values", {}).items()):
        ET.SubElement(props, "property", name="measured." + name, value=str(value))
    for name, outcome, seconds, message in results:
        case = ET.SubElement(suite, "testcase", classname="hil_tests.%s" % spec.kind,
                             name=name, time="%.3f" % seconds)
        if outcome in ("failed", "error"):
            ET.SubElement(case, "failure" if outcome == "failed" else "error",
                          message=message.splitlines()[0][:300] if message else "").text = message
        elif outcome == "skipped":
            ET.SubElement(case, "skipped", message=message[:300])
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def _version(v):
    return "%d (%d.%d.%d)" % (v, v // 10000, v // 100 % 100, v % 100) if isinstance(v, int) else "?"


def _summary(spec, results, started, folder):
    info = spec.info
    counts = {}
    for r in results:
        counts[r[1]] = counts.get(r[1], 0) + 1
    verdict = "FAIL" if counts.get("failed") or counts.get("error") else "PASS"
    lines = ["cityedge bench report: %s" % verdict, "",
             "board     %s" % spec.name,
             "device    %s" % (info.get("device_id") or spec.device or "?"),
             "kind      %s" % spec.kind,
             "MAC       %s" % (info.get("mac") or "not read"),
             "firmware  %s" % _version(info.get("firmware")),
             "port      %s" % info.get("port", "?"),
             "date      %s" % started.strftime("%Y-%m-%d %H:%M:%S UTC"),
             "tests     %s" % ", ".join("%d %s" % (n, k) for k, n in sorted(counts.items())),
             ""]
    width = max(len(r[0]) for r in results)
    for name, outcome, seconds, message in results:
        lines.append("%-7s %-*s %6.1f s" % (outcome.upper(), width, name, seconds))
        if outcome != "passed" and message:
            lines.append("        " + message.splitlines()[0][:160])
    values = info.get("values", {})
    if values:
        lines += ["", "measured"]
        for name, value in sorted(values.items()):
            lines.append("  %-28s %s" % (name, value))
    lines += ["", "junit.xml and console.log are beside this file (%s)." % folder]
    return "\n".join(lines) + "\n"
