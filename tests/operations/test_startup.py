"""`--setup` and `--warm`, with `panel serve`'s meaning, on real servers.

`--setup` runs once in every serving process (each worker with --num-procs, never the supervisor)
before anything is served; Panel apps see what it put in `pn.state.cache`. `--warm` builds each
app's document once before the first visitor and leaves no session behind.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from bokeh.client import pull_session

from aperture.server import Server
from tests.support.servers import REPO_ROOT, ServerProcess

RECORDING_APP = """
import os
from bokeh.io import curdoc
from bokeh.models import Div

with open(os.environ["RECORD_FILE"], "a") as record:
    record.write(f"build {os.getpid()}\\n")
curdoc().add_root(Div(text="hi"))
"""

HOOKS = """
import os

def on_session_destroyed(session_context):
    with open(os.environ["RECORD_FILE"], "a") as record:
        record.write(f"destroyed {os.getpid()}\\n")
"""


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _directory_app(tmp_path: Path) -> Path:
    app = tmp_path / "recorder"
    app.mkdir()
    (app / "main.py").write_text(RECORDING_APP)
    (app / "app_hooks.py").write_text(HOOKS)
    return app


def test_setup_runs_once_before_serving_and_panel_apps_see_its_cache(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    setup = tmp_path / "setup.py"
    setup.write_text(
        textwrap.dedent(
            """
            import os
            import panel as pn

            with open(os.environ["RECORD_FILE"], "a") as record:
                record.write(f"setup {os.getpid()} {__name__} {os.path.basename(__file__)}\\n")
            pn.state.cache["greeting"] = "loaded by the setup script"
            """
        )
    )
    app = tmp_path / "panel_app.py"
    app.write_text('import panel as pn\n\npn.pane.Markdown(pn.state.cache["greeting"]).servable()\n')
    with ServerProcess([app], ["--setup", str(setup)], env={"RECORD_FILE": str(record)}) as server:
        assert _lines(record) == [f"setup {server.pid} aperture_setup_module setup.py"]
        import panel.models  # noqa: F401 - the client must know Panel's model classes

        url = f"http://127.0.0.1:{server.port}/panel_app"
        with pull_session(url=url) as session:
            texts = [str(getattr(m, "text", "")) for m in session.document.roots]
            assert any("loaded by the setup script" in text for text in texts), texts
    assert len(_lines(record)) == 1  # not again per session


def test_setup_runs_in_each_worker_not_in_the_supervisor(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    setup = tmp_path / "setup.py"
    setup.write_text(
        'import os\nwith open(os.environ["RECORD_FILE"], "a") as r:\n    r.write(f"{os.getpid()}\\n")\n'
    )
    app = tmp_path / "app.py"
    app.write_text("from bokeh.io import curdoc\nfrom bokeh.models import Div\ncurdoc().add_root(Div())\n")
    with ServerProcess(
        [app], ["--setup", str(setup), "--num-procs", "2"], env={"RECORD_FILE": str(record)}
    ) as server:
        server.wait_for_log(r"(?s)app running at.*app running at", timeout=30)  # both workers ready
        pids = set(_lines(record))
        assert len(pids) == 2 and str(server.pid) not in pids


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("raise RuntimeError('no database')", "--setup {path} raised RuntimeError: no database"),
        ("def broken(:\n", "--setup {path}: SyntaxError"),
        ("import sys\nsys.exit(4)", "--setup {path} raised SystemExit: 4"),
    ],
)
def test_a_failing_setup_script_stops_the_start_with_one_clear_line(
    tmp_path: Path, script: str, expected: str
) -> None:
    setup = tmp_path / "setup.py"
    setup.write_text(script)
    app = tmp_path / "app.py"
    app.write_text("from bokeh.io import curdoc\nfrom bokeh.models import Div\ncurdoc().add_root(Div())\n")
    done = subprocess.run(
        [sys.executable, "-m", "aperture", "serve", str(app), "--port", "0", "--setup", str(setup)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("aperture: error: " + expected.format(path=setup)), done.stderr


def test_a_missing_setup_script_is_a_configuration_error(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "aperture", "serve", str(app), "--setup", str(tmp_path / "nope.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"aperture: error: --setup: {tmp_path / 'nope.py'} is not a file"


def test_warm_builds_each_app_once_before_the_first_visitor_and_keeps_no_session(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    app = _directory_app(tmp_path)
    with ServerProcess([app], ["--warm"], env={"RECORD_FILE": str(record)}) as server:
        pid = server.pid
        assert _lines(record) == [f"build {pid}", f"destroyed {pid}"]  # before the ready line
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/recorder", timeout=10) as reply:
            assert reply.status == 200
        assert _lines(record)[2:] == [f"build {pid}"]  # the visitor's own session


def test_without_warm_nothing_is_built_before_the_first_visitor(tmp_path: Path) -> None:
    record = tmp_path / "record.txt"
    with ServerProcess([_directory_app(tmp_path)], env={"RECORD_FILE": str(record)}):
        assert _lines(record) == []


async def test_warm_imports_the_apps_modules_and_leaves_no_live_session(tmp_path: Path, monkeypatch) -> None:
    module = tmp_path / "heavy_module_for_warm_test.py"
    module.write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def make_doc(doc) -> None:
        import heavy_module_for_warm_test  # noqa: F401 - the import is what --warm makes early
        from bokeh.models import Div

        doc.add_root(Div(text="x"))

    def broken(doc) -> None:
        raise ValueError("cannot build")

    server = Server({"/app": make_doc, "/broken": broken}, port=0, address="127.0.0.1", warm=True)
    assert "heavy_module_for_warm_test" not in sys.modules
    await server.start()
    try:
        assert "heavy_module_for_warm_test" in sys.modules
        assert server.get_sessions("/app") == [] and server.get_sessions("/broken") == []
    finally:
        await server.stop()
        sys.modules.pop("heavy_module_for_warm_test", None)
