"""The upload page served at ``/``: one self-contained HTML file (no external scripts, styles or fonts)."""

from __future__ import annotations

import html
import json
from typing import Any

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>agecompact</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
         color: #1b1b1b; }
  h1 { font-size: 1.5rem; margin-bottom: 0.25rem; }
  #about { color: #555; margin-top: 0; }
  form { display: flex; gap: 0.75rem; align-items: center; flex-wrap: wrap; margin: 1.5rem 0 1rem; }
  button { padding: 0.4rem 1rem; font-size: 1rem; }
  #status.error { color: #b00020; }
  #result { display: block; max-width: 100%; height: auto; margin: 1rem 0; border: 1px solid #ccc; }
  table { border-collapse: collapse; }
  th, td { padding: 0.25rem 0.75rem; border-bottom: 1px solid #ddd; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
</style>
</head>
<body data-state="ready">
<h1>agecompact</h1>
<p id="about">__ABOUT__</p>
<form id="upload">
  <input type="file" id="file" name="image" accept="image/jpeg,image/png,image/bmp,image/webp" required>
  <button type="submit" id="submit">Estimate ages</button>
</form>
<p id="status" role="status" aria-live="polite"></p>
<img id="result" alt="the photo with a box and an age on each face" hidden>
<table id="faces" hidden>
  <thead><tr><th>face</th><th>age</th><th>gender</th><th>score</th><th>box (x, y, w, h)</th></tr></thead>
  <tbody></tbody>
</table>
<script>
"use strict";
const LIMIT = __LIMIT__;
const form = document.getElementById("upload");
const statusLine = document.getElementById("status");
const result = document.getElementById("result");
const table = document.getElementById("faces");

function show(message, state) {
  statusLine.textContent = message;
  statusLine.className = state === "error" ? "error" : "";
  document.body.dataset.state = state;
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function fixed(value, digits) {
  return value === null || value === undefined ? "—" : value.toFixed(digits);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.getElementById("file").files[0];
  if (!file) { show("Choose a photo first.", "error"); return; }
  if (file.size > LIMIT) { show(`Error: the file is larger than the ${LIMIT} byte limit.`, "error"); return; }
  show("Estimating…", "busy");
  const body = new FormData();
  body.append("image", file);
  let reply;
  try {
    const response = await fetch("predict?annotate=1", { method: "POST", body });
    const text = await response.text();
    try { reply = JSON.parse(text); } catch (e) { reply = { error: text.trim() || response.statusText }; }
    if (!response.ok) { show("Error: " + (reply.error || response.status), "error"); return; }
  } catch (e) {
    show("Error: " + e.message, "error");
    return;
  }
  result.src = reply.image;
  result.hidden = false;
  const rows = reply.faces.map((f) => {
    const tr = document.createElement("tr");
    tr.append(cell(String(f.face + 1)), cell(fixed(f.age, 1)), cell(f.gender || "—"), cell(fixed(f.score, 2)),
              cell(f.box.map((v) => Math.round(v)).join(", ")));
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = rows.length === 0;
  const n = reply.faces.length;
  show(`${n} face${n === 1 ? "" : "s"} found in ${reply.width}×${reply.height} pixels (${reply.seconds} s).`, "done");
});
</script>
</body>
</html>
"""


def render_page(info: dict[str, Any]) -> str:
    about = f"Model {info['model']} ({info['arch']}), detector {info['detector']}, backend {info['backend']}."
    if info.get("gender_model"):
        about += f" Gender model {info['gender_model']}."
    return (_PAGE.replace("__ABOUT__", html.escape(about))
            .replace("__LIMIT__", json.dumps(int(info["max_upload_bytes"]))))
