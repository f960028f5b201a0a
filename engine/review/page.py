"""The gallery's one static ``index.html``: a card per image (its panels, scores and links), the
page's CSS and script, and its data as JSON inside it."""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from engine.datasets import relative_ref
from engine.outputs import GT_COLOR, PRED_COLOR, PSEUDO_COLOR, UNCERTAIN_COLOR
from engine.review.inputs import NO_SCORE, Panel
from engine.text import METRICS, counted, format_score


def _score_text(scores: dict[str, float | None]) -> str:
    """``IoU 41.20 · BIoU 20.31 · BF1 0.5530`` ("n/a" where undefined), as the report prints."""
    return " &middot; ".join(
        f"{title} {format_score(scores[key], nd)}" for key, title, nd in METRICS
    )


def _url(path: str) -> str:
    """A relative file path as an attribute's URL: percent-encoded, so that an image named
    ``bike #3.jpg`` or ``x?y.jpg`` loads (``#`` and ``?`` would end the path) in any browser. A
    name that is not UTF-8 (``caf\\xe9.jpg``) as its own bytes (``caf%E9.jpg``, as ``as_uri``
    does): it raised UnicodeEncodeError, and ``engine review`` wrote no gallery at all."""
    return html.escape(quote(path.replace(os.sep, "/"), errors="surrogateescape"))


def _image_url(path: Path, out: Path) -> str:
    """The link from the gallery in ``out`` to the image ``path``: its path relative to the
    gallery (:func:`_url`), or its ``file:`` URL where there is none (on another drive, on
    Windows: ``os.path.relpath`` raised "path is on mount 'D:', start on mount 'C:'", and the
    whole gallery failed with it), and where ``..`` out of a folder reached through a symbolic
    link reads otherwise from the path as typed than from the real one (:func:`relative_ref`):
    a browser resolves it against the page's URL, which is either (a browser or file manager
    may resolve the links), and only the absolute URL holds for both. An image inside the
    gallery's folder (by its real path) is linked relative, down from the folder, which leads to
    it from either path of the folder: its absolute URL (``../a/b/real/imgs/x.jpg`` from a
    linked ``g``, given the image's real path, leads elsewhere) broke once the gallery was
    served over HTTP (``python -m http.server``), where no ``file:`` link loads."""
    real, real_out = Path(os.path.realpath(path)), Path(os.path.realpath(out))
    if real.is_relative_to(real_out):
        return _url(real.relative_to(real_out).as_posix())
    ref = relative_ref(path, out)
    return html.escape(Path(ref).as_uri()) if Path(ref).is_absolute() else _url(ref)


def _card(
    split,
    st,
    scores,
    panels: list[Panel],
    original: str | None,
    problem: str | None = None,
    details: Sequence[Panel] = (),
    first: bool = False,
) -> str:
    """One image's card; with ``problem``, no panels and the problem in their place. The title
    links to ``original``, the image's URL from the gallery (:func:`_image_url`; None: no image
    found). ``first``: a card sorted before all (its pseudo label, confidence map or image could
    not be read); ``data-group`` keeps it first, and one with nothing labelled last, when the
    page is sorted by confidence either way."""
    conf = "" if math.isnan(st.confidence) else f"{st.confidence:.3f}"
    group = 0 if first else 2 if not conf else 1  # NaN: nothing labelled
    conf_text = conf or "no pixel labelled"
    figs = "".join(
        f'<figure><img src="{_url(rel)}" alt="{html.escape(title)}" loading="eager">'
        f"<figcaption>{html.escape(title)}"
        + (f'<br><span class="score">{_score_text(s)}</span>' if s is not None else "")
        + "</figcaption></figure>"
        for title, rel, _, s in panels
    )
    if details:  # on a row of their own
        figs += '<div class="break"></div>' + "".join(
            f'<figure><img src="{_url(rel)}" alt="{html.escape(title)}" loading="eager">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>"
            for title, rel, _, _ in details
        )
    if problem is not None:
        figs = f'<p class="problem">could not be shown: {html.escape(problem)}</p>'
    score_text = ", ".join(f"{s:.2f}" for s in scores) or "none"
    pseudo = panels[0][3] if panels else None  # the pseudo label's scores, None without one
    iou = pseudo["iou"] if pseudo is not None and pseudo["iou"] is not None else NO_SCORE
    name = f"{html.escape(split)}/{html.escape(st.stem)}"
    title = name if original is None else f'<a href="{original}">{name}</a>'
    return (
        f'<div class="card" data-group="{group}" data-conf="{conf or "2"}" '
        f'data-n="{st.num_instances}" '
        f'data-iou="{iou:.4f}" data-stem="{html.escape(st.stem)}">'
        f"<h3>{title}</h3>"
        f"<p>confidence <b>{conf_text}</b> &middot; {counted(st.num_instances, 'instance')} "
        f"({st.num_tiny} tiny) &middot; instance scores: {score_text}</p>"
        f'<div class="panels">{figs}</div></div>'
    )


_CSS = """
body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa;color:#222}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;margin:0 0 1em;padding:.5em 1em}
.card h3{margin:.2em 0;font-size:1em}.card p{margin:.2em 0 .5em;font-size:.9em}
.panels{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}.break{flex-basis:100%;height:0}
figure img{max-width:512px;width:100%;display:block;border:1px solid #ccc}
figcaption{font-size:.8em;color:#555}.problem{color:#c00}.score{font-variant-numeric:tabular-nums}.badge{background:#c00;color:#fff;padding:0 .4em;border-radius:3px}
button{margin-right:.5em}
"""


_JS = """
function sortCards(key, dir){
  const box=document.getElementById('cards');
  const cards=[...box.children];
  // by confidence, either way: the cards that could not be read first, as the page has them,
  // and those with nothing labelled (no confidence) last
  const group=c=>key==='conf'?parseInt(c.dataset.group||'1'):0;
  cards.sort((a,b)=>group(a)-group(b)
                    ||dir*(parseFloat(a.dataset[key])-parseFloat(b.dataset[key]))
                    ||a.dataset.stem.localeCompare(b.dataset.stem));
  cards.forEach(c=>box.appendChild(c));
}
window.addEventListener('load',()=>{
  const imgs=[...document.images];
  const ok=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;
  document.body.dataset.imagesLoaded=ok;
  document.body.dataset.imagesTotal=imgs.length;
});
"""


def _script_json(doc: dict) -> str:
    """``doc`` as JSON to embed in a ``<script>``, whose text is read as is (not HTML-unescaped):
    ``<``, ``>`` and ``&`` written as JSON escapes, so a path holding ``</script>`` cannot end
    the element and ``JSON.parse`` of the element's text gives ``doc`` back."""
    text = json.dumps(doc, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _page(
    class_name: str,
    backend: str,
    run_root: str,
    cards: list[str],
    cfg: dict,
    scored: bool,
    cut: tuple[int, int] | None = None,
) -> str:
    """The gallery's page; ``cut``: (images labelled, of them unreadable without a card) where
    --limit left images out, said under the heading (before, only the cards' count was)."""
    shown, more = counted(len(cards), "image"), ""
    if cut is not None:
        shown = f"{len(cards):,} of {counted(cut[0], 'image')} (--limit {len(cards)})"
        if cut[1]:
            more = (
                f'<p class="problem">{counted(cut[1], "more image")} could not be shown and '
                "have no card here (past --limit): review.json lists them</p>"
            )
    badge = ' <span class="badge">simulated labeler</span>' if backend == "simulated" else ""
    legend = (
        f"tints: pseudo label rgb{PSEUDO_COLOR}, prediction rgb{PRED_COLOR}, "
        f"annotation rgb{GT_COLOR}, uncertain / unannotated rgb{UNCERTAIN_COLOR}"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>Review: {html.escape(class_name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(class_name)} pseudo labels ({html.escape(backend)}){badge}</h1>"
        f"<p>run {html.escape(run_root)} &middot; {shown}, "
        "lowest confidence first "
        "(confidence = mean over pixels labelled the class, 0..1)</p>"
        f"{more}<p>{html.escape(legend)}</p>"
        + (
            "<p>annotated images: each panel's IoU and Boundary IoU (x100) and Boundary F1 of "
            "this image against the annotation</p>"
            if scored
            else ""
        )
        + "<p><button onclick=\"sortCards('conf',1)\">confidence &uarr;</button>"
        "<button onclick=\"sortCards('conf',-1)\">confidence &darr;</button>"
        "<button onclick=\"sortCards('n',-1)\">most instances</button>"
        + (
            "<button onclick=\"sortCards('iou',1)\">pseudo-label IoU &uarr;</button>"
            if scored
            else ""
        )
        + "</p>"
        f"<div id='cards'>{''.join(cards)}</div>"
        f"<script type='application/json' id='config'>{_script_json(cfg)}</script>"
        f"<script>{_JS}</script></body></html>\n"
    )
