"""Page checks every screen must pass: axe-core's serious and critical rules, no sideways
scroll, and a full-page screenshot to look at."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from tests.e2e.conftest import OUTPUT
from tests.live import missing

# Loaded once: the axe-core script bundled with the Python wrapper (about half a megabyte)...
AXE = Axe()
BLOCKING = ("serious", "critical")
# ...and the newest axe-core 4.x (tests/e2e/axe/package.json, its version fixed by the lock
# file), whose newer rules the bundled one lacks (label-content-name-mismatch, for one).
NEWEST_AXE_DIR = Path(__file__).parent / "axe"


@cache
def newest_axe() -> Axe:
    """The newest axe-core, installed with `npm ci` on first use (as the benchmarks install
    their load generator); without node and npm the checks it adds cannot run."""
    script = NEWEST_AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        if shutil.which("npm") is None:
            missing("NODE", "npm is needed to install the newest axe-core (tests/e2e/axe)")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NEWEST_AXE_DIR,
            check=True,
            timeout=300,
        )
    return Axe(script.read_text(encoding="utf-8"))


def axe_version(axe: Axe, page: Page) -> str:
    """The version of the axe-core script `axe` runs (as it reports itself in `page`)."""
    page.evaluate(axe.axe_script)
    version: str = page.evaluate("axe.version")
    return version


# Elements sticking out past the right edge of the viewport. Those reaching the page's full
# width come first (they are what makes it scroll), the narrowest of them first (the culprit
# rather than its containers); an element a scroll box keeps in its own box comes later.
_WIDE_ELEMENTS = """
() => {
  const limit = document.documentElement.clientWidth;
  const full = document.documentElement.scrollWidth;
  const name = (node) => {
    let text = node.tagName.toLowerCase();
    if (node.id) text += "#" + node.id;
    for (const cls of node.classList) text += "." + cls;
    return text;
  };
  const found = [];
  for (const node of document.body.querySelectorAll("*")) {
    const box = node.getBoundingClientRect();
    if (box.right <= limit + 0.5 || box.width === 0) continue;
    found.push({ name: name(node), right: Math.round(box.right), width: Math.round(box.width) });
  }
  const reach = (e) => Math.abs(full - e.right);
  found.sort((a, b) => reach(a) - reach(b) || a.width - b.width);
  return { viewport: limit, scrollWidth: full, elements: found.slice(0, 6) };
}
"""


def axe_problems(page: Page, most: int = 5) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (by the bundled and
    the newest axe-core, a rule found by both told once), one entry per rule:
    its id, impact and summary, then where (up to `most` elements) and what to fix there."""
    problems = []
    seen = set()
    violations = [
        *AXE.run(page).response["violations"],
        *newest_axe().run(page).response["violations"],
    ]
    for violation in violations:
        if violation["impact"] not in BLOCKING or violation["id"] in seen:
            continue
        seen.add(violation["id"])
        nodes = violation["nodes"]
        lines = [f"{violation['id']} ({violation['impact']}, {len(nodes)}x): {violation['help']}"]
        for node in nodes[:most]:
            target = " ".join(str(t) for t in node["target"])
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"    at {target}: {summary}")
        if len(nodes) > most:
            lines.append(f"    ...and {len(nodes) - most} more")
        problems.append("\n".join(lines))
    return problems


def sideways_scroll(page: Page) -> str | None:
    """Why the page scrolls sideways (the widest elements past the right edge), or None."""
    found: dict[str, Any] = page.evaluate(_WIDE_ELEMENTS)
    if found["scrollWidth"] <= found["viewport"]:
        return None
    widest = "; ".join(
        f"{e['name']} (right edge {e['right']}px, {e['width']}px wide)" for e in found["elements"]
    )
    return (
        f"the page is {found['scrollWidth']}px wide in a {found['viewport']}px viewport: "
        f"{widest or 'no single element sticks out'}"
    )


def assert_no_sideways_scroll(page: Page) -> None:
    problem = sideways_scroll(page)
    assert problem is None, problem


# The focused element's ring against its neighbours: outside it, whatever is painted behind
# the element; inside it, the same background across the gap, or the element's own border (or
# fill) when the ring sits flush. Colours are composited over what is behind them.
_FOCUS_RING = """
() => {
  const node = document.activeElement;
  if (!node || node === document.body) return null;
  const style = getComputedStyle(node);
  const rgba = (text) => {
    const m = text.match(/[\\d.]+/g) || [];
    const srgb = text.startsWith("color(");
    const [r, g, b] = m.slice(0, 3).map((v) => (srgb ? Number(v) * 255 : Number(v)));
    const a = m.length > 3 ? Number(m[3]) : 1;
    return [r, g, b, a];
  };
  const over = (top, below) => top.slice(0, 3).map((c, i) => c * top[3] + below[i] * (1 - top[3]));
  const behind = (start) => {
    const layers = [];
    for (let up = start; up; up = up.parentElement) {
      const colour = rgba(getComputedStyle(up).backgroundColor);
      if (colour[3] > 0) layers.push(colour);
      if (colour[3] >= 1) break;
    }
    return layers.reduceRight((below, top) => over(top, below), [255, 255, 255]);
  };
  const outside = behind(node.parentElement);
  let inside = behind(node);
  if (parseFloat(style.outlineOffset) > 0) inside = outside;
  else if (parseFloat(style.borderTopWidth) > 0) inside = over(rgba(style.borderTopColor), inside);
  let name = node.tagName.toLowerCase();
  if (node.id) name += "#" + node.id;
  for (const cls of node.classList) name += "." + cls;
  const path = [];
  for (let up = node; up.parentElement; up = up.parentElement) {
    path.push([...up.parentElement.children].indexOf(up));
  }
  return {
    name,
    path: path.join("/"),
    text: (node.textContent || node.value || "").trim().slice(0, 30),
    style: style.outlineStyle,
    width: parseFloat(style.outlineWidth),
    ring: over(rgba(style.outlineColor), outside),
    neighbours: [outside, inside],
  };
}
"""


def _luminance(rgb: list[float]) -> float:
    linear = [
        c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: list[float], b: list[float]) -> float:
    """WCAG contrast ratio of two sRGB colours (0-255 channels)."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def weak_focus_rings(page: Page, stops: int = 60) -> list[str]:
    """Tab through the page (up to `stops` times, until focus comes round again) and name each
    element whose focus ring is missing or under 3:1 against a colour next to it."""
    problems: list[str] = []
    seen: set[str] = set()
    for _ in range(stops):
        page.keyboard.press("Tab")
        ring: dict[str, Any] | None = page.evaluate(_FOCUS_RING)
        if ring is None:
            continue
        if ring["path"] in seen:
            break
        seen.add(ring["path"])
        key = f"{ring['name']} {ring['text']!r}"
        if ring["style"] == "none" or ring["width"] < 2:
            problems.append(f"{key}: no visible focus ring")
            continue
        worst = min(contrast(ring["ring"], n) for n in ring["neighbours"])
        if worst < 3:
            problems.append(f"{key}: focus ring contrast {worst:.2f}:1 against its neighbours")
    return problems


# Controls smaller than 24 by 24 CSS pixels (WCAG 2.5.8): buttons, toggles (details summaries,
# checkboxes, radio buttons) and selects that are shown; links in running text are exempt.
_SMALL_TARGETS = """
() => {
  const found = [];
  const controls = 'button, summary, select, input[type="checkbox"], input[type="radio"]';
  for (const node of document.querySelectorAll(controls)) {
    const box = node.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || node.closest("[hidden]")) continue;
    if (getComputedStyle(node).visibility === "hidden") continue;
    const label = node.closest("label");
    const target = label && node.matches("input") ? label.getBoundingClientRect() : box;
    if (target.width < 24 || target.height < 24) {
      const name = node.tagName.toLowerCase() + (node.id ? "#" + node.id : "");
      const text = (node.textContent || node.getAttribute("aria-label") || "").trim().slice(0, 30);
      const size = `${Math.round(target.width)}x${Math.round(target.height)}`;
      found.push(`${name} ${JSON.stringify(text)}: ${size}`);
    }
  }
  return found;
}
"""


def small_targets(page: Page) -> list[str]:
    """The controls on the page smaller than 24 by 24 pixels (WCAG 2.5.8, target size)."""
    found: list[str] = page.evaluate(_SMALL_TARGETS)
    return [f"target under 24x24: {f}" for f in found]


def shoot(page: Page, name: str) -> None:
    """A full-page PNG in tests/e2e/output/ (not committed), to look at."""
    OUTPUT.mkdir(exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "-", name)
    page.screenshot(path=OUTPUT / f"{safe}.png", full_page=True)
