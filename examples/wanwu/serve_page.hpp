// The page `wanwu serve` answers on GET /: pick an image, see the model's top-k with
// probabilities. Self-contained (inline style and script, nothing fetched but /predict) so that it
// works on a machine without network access, and compiled into the program so that serving it
// needs no file on disk. The result lands in #result with data-state="done" or "error", which is
// what tests (and anyone scripting a browser) wait for.
#pragma once

namespace wanwu::cli {

inline constexpr const char* kServePage = R"WANWU_HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wanwu serve</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; color: #222; }
  h1 { font-size: 1.3em; }
  #preview { max-width: 224px; max-height: 224px; display: block; margin: 1em 0; image-rendering: pixelated; }
  table { border-collapse: collapse; }
  td { padding: .15em .6em; }
  td.p { text-align: right; font-variant-numeric: tabular-nums; }
  .bar { background: #4a7bd0; height: .8em; }
  .error { color: #b00020; }
  #meta { color: #666; }
</style>
</head>
<body>
<h1>wanwu serve</h1>
<p id="meta">model: <span id="model">…</span></p>
<form id="form">
  <input type="file" id="file" name="image" accept="image/*">
  <label>top-k <input type="number" id="topk" value="5" min="1" max="1000" style="width:4em"></label>
  <button type="submit" id="go">Classify</button>
</form>
<img id="preview" alt="">
<div id="result" data-state="idle"></div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
fetch("/health").then((r) => r.json()).then((h) => { $("model").textContent = h.model + " (" + h.classes + " classes)"; })
  .catch(() => { $("model").textContent = "unavailable"; });
$("file").addEventListener("change", () => {
  const f = $("file").files[0];
  if (f) $("preview").src = URL.createObjectURL(f);
});
function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}
$("form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = $("result");
  const f = $("file").files[0];
  if (!f) { out.textContent = "Choose an image first."; out.className = "error"; out.dataset.state = "error"; return; }
  out.textContent = "…";
  out.className = "";
  out.dataset.state = "busy";
  const body = new FormData();
  body.append("image", f);
  try {
    const r = await fetch("/predict?topk=" + encodeURIComponent($("topk").value || "5"), { method: "POST", body });
    const j = await r.json();
    out.textContent = "";
    if (!r.ok) throw new Error(j.error || ("HTTP " + r.status));
    const t = document.createElement("table");
    for (const c of j.topk) {
      const tr = document.createElement("tr");
      tr.className = "row";
      tr.appendChild(cell(c.label, "label"));
      tr.appendChild(cell((100 * c.prob).toFixed(2) + "%", "p"));
      const bar = cell("");
      const b = document.createElement("div");
      b.className = "bar";
      b.style.width = Math.max(1, Math.round(200 * c.prob)) + "px";
      bar.appendChild(b);
      tr.appendChild(bar);
      t.appendChild(tr);
    }
    out.appendChild(t);
    out.dataset.state = "done";
  } catch (e) {
    out.textContent = "Error: " + e.message;
    out.className = "error";
    out.dataset.state = "error";
  }
});
</script>
</body>
</html>
)WANWU_HTML";

}  // namespace wanwu::cli
