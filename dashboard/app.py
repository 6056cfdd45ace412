"""The dashboard shell: ``Dash(use_pages=True)``, the shared stores, the navigation bar and
``page_container``. Pages live in ``dashboard/pages/``; this module holds no data and nothing
imports from it but the CLI and the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import dash
from dash import Dash, Input, Output, dcc, html, no_update

from analyzer.localtime import local_label
from analyzer.views import Window
from dashboard import context, ids
from dashboard.i18n import DEFAULT_LANG, LANGS, t

HERE = Path(__file__).parent
PAGE_ORDER = ("overview", "matrix", "path", "probes", "faults", "reports")


def create_app(ctx: context.Context) -> Dash:
    """Build the app over one data context (store, inventory, windows)."""
    context.configure(ctx)
    app = Dash(__name__, use_pages=True, pages_folder=str(HERE / "pages"),
               assets_folder=str(HERE / "assets"), title="ixmeter",
               suppress_callback_exceptions=True, serve_locally=True)
    app.layout = _shell(ctx)
    app.callback(Output(ids.LANG, "data"), Input(ids.LANG_SWITCH, "value"))(_store_lang)
    app.callback(Output(ids.LANG_SWITCH, "value"), Input(ids.URL, "search"))(_lang_from_url)
    app.callback(Output(ids.TITLE, "children"), Output(ids.NAV, "children"),
                 Output(ids.WINDOW_NOTE, "children"), Output(ids.SYNTHETIC, "children"),
                 Output(ids.SYNTHETIC, "style"), Input(ids.LANG, "data"))(_label_shell)
    return app


def _shell(ctx: context.Context) -> html.Div:
    return html.Div([
        dcc.Store(id=ids.LANG, data=DEFAULT_LANG),
        dcc.Location(id=ids.URL),
        html.Header([
            html.H1(id=ids.TITLE, className="title"),
            html.Nav(id=ids.NAV, className="nav"),
            dcc.RadioItems(id=ids.LANG_SWITCH, className="lang",
                           options=[{"label": "中文", "value": "zh"},
                                    {"label": "English", "value": "en"}],
                           value=DEFAULT_LANG, inline=True, persistence=True,
                           persistence_type="local"),
        ], className="header"),
        html.Div(html.Span(id=ids.WINDOW_NOTE), className="subheader"),
        html.Div(id=ids.SYNTHETIC, className="synthetic", style={"display": "none"}),
        html.Main(dash.page_container, className="main"),
    ])


def _span(w: Window, tz: str) -> str:
    """A window as local dates in ``tz``, or local times when it is shorter than a day."""
    if w.end_ns - w.start_ns < 86_400_000_000_000:
        return (f"{local_label(w.start_ns, tz, '%Y-%m-%d %H:%M')} – "
                f"{local_label(w.end_ns, tz, '%H:%M')}")
    return (f"{local_label(w.start_ns, tz, '%Y-%m-%d')} – "
            f"{local_label(w.end_ns - 1, tz, '%Y-%m-%d')}")


def _lang_from_url(search: str | None) -> Any:
    """``?lang=en`` or ``?lang=zh`` in any URL picks the language (a kiosk or projector link)."""
    lang = parse_qs((search or "").lstrip("?")).get("lang", [""])[0]
    return lang if lang in LANGS else no_update


def _store_lang(value: str) -> str:
    return value or DEFAULT_LANG


def _label_shell(lang: str) -> tuple[str, list[Any], str, str, dict[str, str]]:
    pages = {p["module"].rsplit(".", 1)[-1]: p for p in dash.page_registry.values()}
    links = [dcc.Link(t(name, lang), href=pages[name]["relative_path"], id=f"nav-{name}",
                      className="nav-link") for name in PAGE_ORDER if name in pages]
    c = context.get()
    stores = f" ({t('baseline_store', lang)})" if c.baseline_store is not None else ""
    note = (f"{t('baseline', lang)}: {_span(c.baseline, c.tz)}{stores} · "
            f"{t('current', lang)}: {_span(c.current, c.tz)} · "
            f"{t('times_note', lang).format(tz=c.tz)}")
    why = c.synthetic()
    banner = f"{t('synthetic_data', lang)}: {why}" if why else ""
    return t("app_title", lang), links, note, banner, {"display": "block" if why else "none"}
