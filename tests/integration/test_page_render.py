"""The app page's fast paths (`aperture.pages`), with Bokeh's own rendering as the oracle.

`PageRenderer.page_assets` keeps the bundle's `<script>`/`<link>` tags while the model classes
stay the same; `app_page` fills a kept skeleton of Bokeh's default template. Each page must be
byte for byte what `bokeh.embed.elements.html_page_for_render_items` renders with the same ids
(the random element and script ids are read back from the fast page and replayed into Bokeh).
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any
from unittest import mock

import bokeh.embed.elements as bokeh_elements
import bokeh.embed.util as bokeh_embed_util
import pytest
from bokeh.document import Document
from bokeh.embed.bundle import bundle_for_objs_and_resources
from bokeh.embed.util import RenderItem
from bokeh.models import Div, Slider

from aperture.pages import PageRenderer

JSON_ID = re.compile(r'<script type="application/json" id="([^"]+)">')
ELEMENT_ID = re.compile(r'<div id="([^"]+)" data-root-id')


def _session(doc: Document) -> Any:
    return SimpleNamespace(document=doc)


def bokeh_page(renderer: PageRenderer, doc: Document, token: str, page: str) -> str:
    """What Bokeh renders for `doc` and `token`, given the random ids `page` drew."""
    elements = ELEMENT_ID.findall(page)
    match = JSON_ID.search(page)
    assert match is not None and len(elements) == len(doc.roots)
    bundle = bundle_for_objs_and_resources(None, renderer.resources())
    with (
        mock.patch.object(bokeh_embed_util, "make_globally_unique_id", side_effect=elements),
        mock.patch.object(bokeh_elements, "make_globally_unique_css_safe_id", return_value=match.group(1)),
    ):
        item = RenderItem(token=token, roots=list(doc.roots), use_for_title=True)
        html: str = bokeh_elements.html_page_for_render_items(
            bundle,
            {},
            [item],
            doc.title,
            template=doc.template,
            template_variables=dict(doc.template_variables),
        )
    return html


def _doc(roots: int, title: str | None, ids: list[str] | None = None) -> Document:
    doc = Document()
    for i in range(roots):
        model = Div(text=f"root {i}")
        if ids is not None:
            model._id = ids[i]  # as a model deserialized with an id of the client's making
        doc.add_root(model)
    if title is not None:
        doc.title = title
    return doc


TOKENS = ["abc", "eyJzZXNzaW9uX2lkIjogIkhQ" * 40, "a-b_c.D9-sig_nature"]


@pytest.mark.parametrize("roots", [0, 1, 3])
@pytest.mark.parametrize("title", [None, "hello", "", "<b>&amp; 'quoted' \"x\"</b>", "ünïcödé\ttab"])
def test_skeleton_page_is_bokehs_page(roots: int, title: str | None) -> None:
    renderer = PageRenderer(prefix="/pre")
    doc = _doc(roots, title)
    for token in TOKENS:
        for _ in range(2):  # the first page makes the skeleton, the second one fills it
            page = renderer.app_page(_session(doc), token)
            assert page == bokeh_page(renderer, doc, token, page)
    assert len(renderer._skeletons) == 1


def test_each_page_draws_fresh_ids() -> None:
    renderer = PageRenderer(prefix="")
    doc = _doc(2, "t")
    first, second = (renderer.app_page(_session(doc), "tok") for _ in range(2))
    assert JSON_ID.findall(first) != JSON_ID.findall(second)
    assert set(ELEMENT_ID.findall(first)).isdisjoint(ELEMENT_ID.findall(second))


@pytest.mark.parametrize("root_id", ['q"uote', "a<b", "sp ace", "ü", "x'y"])
def test_root_ids_that_need_escaping_take_bokehs_path(root_id: str) -> None:
    renderer = PageRenderer(prefix="")
    doc = _doc(2, "t", ids=["plain1", root_id])
    page = renderer.app_page(_session(doc), "tok")
    assert page == bokeh_page(renderer, doc, "tok", page)
    assert not renderer._skeletons


def test_custom_template_and_variables_take_bokehs_path() -> None:
    renderer = PageRenderer(prefix="")
    doc = _doc(1, "t")
    doc.template_variables["extra"] = "value"
    page = renderer.app_page(_session(doc), "tok")
    assert page == bokeh_page(renderer, doc, "tok", page)
    doc.template_variables.clear()
    doc.template = "{% block postamble %}<meta name='x' content='{{ title }}'>{% endblock %}"
    page = renderer.app_page(_session(doc), "tok")
    assert "<meta name='x' content='t'>" in page
    assert page == bokeh_page(renderer, doc, "tok", page)
    assert not renderer._skeletons


def test_bokeh_dev_changes_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    renderer = PageRenderer(prefix="", minified=True)
    doc = _doc(1, "t")
    quiet = renderer.app_page(_session(doc), "tok")
    monkeypatch.setenv("BOKEH_DEV", "true")
    dev = renderer.app_page(_session(doc), "tok")
    assert "Bokeh.settings.dev = true" in dev and "Bokeh.settings.dev" not in quiet
    assert dev == bokeh_page(renderer, doc, "tok", dev)


def test_assets_follow_new_model_classes() -> None:
    renderer = PageRenderer(prefix="")
    before = renderer.page_assets()
    assert renderer.page_assets() is before  # kept
    assert before == tuple(bundle_for_objs_and_resources(None, renderer.resources()))

    class PageRenderProbe(Slider):  # a class with its own script, as an extension model declares
        __javascript__ = ["https://example.invalid/page-render-probe.js"]

    after = renderer.page_assets()
    assert "page-render-probe.js" in after[0] and "page-render-probe.js" not in before[0]
    assert after == tuple(bundle_for_objs_and_resources(None, renderer.resources()))


@pytest.mark.parametrize("mode", ["cdn", "inline"])
def test_other_resource_modes_are_not_kept(mode: str) -> None:
    renderer = PageRenderer(prefix="", mode=mode)
    assert renderer.page_assets() == tuple(bundle_for_objs_and_resources(None, renderer.resources()))
    assert renderer._page_assets is None


def test_skeletons_are_bounded() -> None:
    renderer = PageRenderer(prefix="")
    for i in range(100):
        doc = _doc(1, f"title {i}")
        page = renderer.app_page(_session(doc), "tok")
        assert page == bokeh_page(renderer, doc, "tok", page)
    assert 0 < len(renderer._skeletons) <= 64


def bokeh_autoload(
    renderer: PageRenderer, token: str, element_id: str, app_path: str, absolute_url: str | None, load: bool
) -> str:
    """`autoload.js` as Bokeh renders it, with a bundle computed afresh."""
    from bokeh.core.templates import AUTOLOAD_JS
    from bokeh.embed.bundle import Script
    from bokeh.embed.elements import script_for_render_items

    from aperture.pages import _origin_of

    resources = renderer.resources(_origin_of(absolute_url)) if load else None
    bundle = bundle_for_objs_and_resources(None, resources)
    item = RenderItem(token=token, elementid=element_id, use_for_title=False)
    bundle.add(Script(script_for_render_items({}, [item], app_path=app_path, absolute_url=absolute_url)))
    script: str = AUTOLOAD_JS.render(bundle=bundle, elementid=element_id)
    return script


@pytest.mark.parametrize("mode", ["server", "cdn"])
def test_autoload_is_bokehs(mode: str) -> None:
    renderer = PageRenderer(prefix="/p", mode=mode)
    cases = [
        ("tok", "el1", "/app", None, True),
        ("tok2", "el2", "/app", "http://example.com:5006/app", True),
        ("tok3", "el3", "/other", "https://h.example/x/app", True),
        ("tok4", "el4", "/app", "http://example.com:5006/app", False),
    ]
    for _ in range(2):  # kept bundles, then reused ones: each autoload.js adds its own script
        for token, element, app_path, url, load in cases:
            mine = renderer.autoload_js(
                token, element, app_path=app_path, absolute_url=url, load_bokehjs=load
            )
            assert mine == bokeh_autoload(renderer, token, element, app_path, url, load)

    # a class with its own stylesheet (a distinct name per parameter: Bokeh refuses duplicates)
    type(
        f"AutoloadProbe{mode.title()}", (Slider,), {"__css__": ["https://example.invalid/autoload-probe.css"]}
    )

    mine = renderer.autoload_js("t", "e", app_path="/app", absolute_url=None, load_bokehjs=True)
    assert "autoload-probe.css" in mine
    assert mine == bokeh_autoload(renderer, "t", "e", "/app", None, True)


def test_autoload_bundles_are_bounded() -> None:
    renderer = PageRenderer(prefix="")
    for i in range(100):
        renderer.autoload_js(
            "t", "e", app_path="/a", absolute_url=f"http://h{i}.example/a", load_bokehjs=True
        )
    assert 0 < len(renderer._autoload_bundles) <= 64
