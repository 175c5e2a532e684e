// evalkit review page. Items come from the JSON block; text is only ever set with textContent, never
// parsed as HTML. Every change is saved in localStorage at once; ratings leave as a JSON or CSV file.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("review-data").textContent);
  var rubric = data.rubric, items = data.items, page = data.page;
  var pairwise = page.mode === "pairwise", sides = pairwise ? ["A", "B"] : ["A"];
  var STORE = "evalkit-review:" + page.id, RATER = "evalkit-review:rater";
  var $ = function (id) { return document.getElementById(id); };
  var ui = {
    rater: $("rv-rater"), progress: $("rv-progress"), count: $("rv-count"), auto: $("rv-auto"), status: $("rv-status"),
    json: $("rv-export-json"), csv: $("rv-export-csv"), helpToggle: $("rv-help-toggle"), help: $("rv-help"),
    strip: $("rv-strip"), item: $("rv-item"), prev: $("rv-prev"), next: $("rv-next"), where: $("rv-where")
  };
  var state = { index: 0, cursor: 0, ratings: {} };
  // What a digit key rates, in order: each scale for output A, then each for output B.
  var targets = [];
  sides.forEach(function (side) { rubric.scales.forEach(function (scale) { targets.push({ side: side, scale: scale }); }); });

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function button(cls, text, onClick) {
    var b = el("button", cls, text);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }
  function say(text) { ui.status.textContent = text; }

  function load() {
    try {
      var saved = JSON.parse(window.localStorage.getItem(STORE) || "null");
      if (saved && typeof saved.ratings === "object" && saved.ratings) {
        state.ratings = saved.ratings;
        state.index = Math.max(0, Math.min(Number(saved.index) || 0, items.length - 1));
        if (typeof saved.auto === "boolean") ui.auto.checked = saved.auto;
      }
      ui.rater.value = (saved && saved.rater) || window.localStorage.getItem(RATER) || "";
      return true;
    } catch (e) {
      say("This browser does not let the page keep ratings (" + e.name + "): export them before you close the tab.");
      return false;
    }
  }
  function save() {
    try {
      var rater = ui.rater.value.trim();
      window.localStorage.setItem(STORE, JSON.stringify({ rater: rater, ratings: state.ratings, index: state.index, auto: ui.auto.checked }));
      if (rater) window.localStorage.setItem(RATER, rater);
    } catch (e) {
      say("Could not save in this browser (" + e.name + "): export your ratings now.");
    }
  }

  function current(item) {
    var r = state.ratings[item.key];
    if (!r || r.hash !== item.hash) r = { hash: item.hash, preference: null, scores: {}, comment: "", time: null };
    return r;
  }
  function valueOf(r, t) { var s = r && r.scores[t.side]; return s ? s[t.scale.name] : undefined; }
  function complete(item) {
    var r = state.ratings[item.key];
    if (!r || r.hash !== item.hash || (pairwise && !r.preference)) return false;
    return targets.every(function (t) { return !t.scale.required || valueOf(r, t) !== undefined; });
  }
  function started(item) {
    var r = state.ratings[item.key];
    return !!r && r.hash === item.hash && (!!r.preference || !!r.comment ||
      Object.keys(r.scores).some(function (s) { return Object.keys(r.scores[s]).length > 0; }));
  }
  function change(edit) {
    var item = items[state.index], r = current(item), was = complete(item);
    edit(r);
    r.time = new Date().toISOString();
    state.ratings[item.key] = r;
    save();
    if (ui.auto.checked && !was && complete(item) && state.index < items.length - 1) go(state.index + 1);
    else draw();
  }
  function setValue(t, value) {
    state.cursor = Math.min(targets.indexOf(t) + 1, targets.length - 1);
    change(function (r) { (r.scores[t.side] = r.scores[t.side] || {})[t.scale.name] = value; });
  }
  function setPreference(pick) { change(function (r) { r.preference = pick; }); }
  function go(index) {
    var next = Math.max(0, Math.min(index, items.length - 1));
    if (next !== state.index) { state.index = next; state.cursor = 0; save(); }
    draw();
    ui.item.scrollIntoView({ block: "nearest" });
  }
  function nextUnrated() {
    for (var k = 1; k <= items.length; k++) {
      var i = (state.index + k) % items.length;
      if (!complete(items[i])) { go(i); return; }
    }
    say("Every item is rated. Enter your rater id and export.");
  }

  function anchor(scale, v) { return scale.anchors[String(v)] || ""; }
  function anchorsLine(scale) {
    return Object.keys(scale.anchors).map(function (k) { return k + " " + scale.anchors[k]; }).join(" · ");
  }
  function scaleBox(t, r) {
    var index = targets.indexOf(t), chosen = valueOf(r, t);
    var box = el("div", "scale" + (index === state.cursor ? " current" : ""));
    box.appendChild(el("span", "name", t.scale.label));
    if (t.scale.question) box.appendChild(el("span", "question", t.scale.question));
    if (!t.scale.required) box.appendChild(el("span", "question", "(optional)"));
    var values = el("div", "values");
    for (var v = t.scale.min; v <= t.scale.max; v++) {
      var b = button(v === chosen ? "on" : "", v, (function (value) {
        return function () { state.cursor = index; setValue(t, value); };
      })(v));
      b.title = anchor(t.scale, v);
      values.appendChild(b);
    }
    box.appendChild(values);
    var meaning = chosen === undefined ? anchorsLine(t.scale) : anchor(t.scale, chosen) ? chosen + ": " + anchor(t.scale, chosen) :
      "chosen " + chosen + " · " + anchorsLine(t.scale);
    box.appendChild(el("div", "anchor", meaning));
    return box;
  }
  function textBlock(cls, text) {
    var pre = el("pre", "text " + cls);
    if (text === "") pre.appendChild(el("span", "empty", "(empty output)"));
    else pre.textContent = text;
    return pre;
  }

  function draw() {
    var item = items[state.index], r = current(item), done = complete(item);
    var box = document.createDocumentFragment(), head = el("div", "item-head");
    head.appendChild(el("b", null, "Item " + (state.index + 1) + " of " + items.length));
    head.appendChild(el("span", null, item.task + " · doc " + item.doc_id));
    head.appendChild(el("span", "state" + (done ? " done" : ""), done ? "✓ rated" : started(item) ? "incomplete" : "not rated yet"));
    box.appendChild(head);
    box.appendChild(el("h3", null, "Source"));
    box.appendChild(textBlock("source", item.source));
    if (item.references.length) {
      var ref = el("details", "reference");
      ref.appendChild(el("summary", null, "Reference" + (item.references.length > 1 ? "s" : "")));
      item.references.forEach(function (t) { ref.appendChild(textBlock("", t)); });
      box.appendChild(ref);
    }
    var outputs = el("div", "outputs");
    item.outputs.forEach(function (o) {
      var section = el("section", "output" + (r.preference === o.side ? " chosen" : ""));
      section.dataset.side = o.side;
      section.appendChild(el("h3", null, pairwise ? "Output " + o.side : "Output"));
      section.appendChild(textBlock("", o.text));
      targets.forEach(function (t) { if (t.side === o.side) section.appendChild(scaleBox(t, r)); });
      outputs.appendChild(section);
    });
    box.appendChild(outputs);
    if (pairwise) {
      var choice = el("div", "choice");
      choice.appendChild(el("div", "question", rubric.preference));
      [["A", "A is better", "a"], ["tie", "Tie", "t"], ["B", "B is better", "b"]].forEach(function (c) {
        var b = button(r.preference === c[0] ? "on" : "", c[1] + " ", function () { setPreference(c[0]); });
        b.dataset.pick = c[0];
        b.appendChild(el("kbd", null, c[2]));
        choice.appendChild(b);
      });
      box.appendChild(choice);
    }
    if (rubric.comment) {
      var label = el("label", "comment");
      label.appendChild(el("h3", null, "Comment (optional) "));
      var area = el("textarea");
      area.id = "rv-comment";
      area.value = r.comment || "";
      area.addEventListener("input", function () {
        var item = items[state.index], rating = current(item);
        rating.comment = area.value;
        rating.time = new Date().toISOString();
        state.ratings[item.key] = rating;
        save();
        drawProgress();
      });
      label.appendChild(area);
      box.appendChild(label);
    }
    ui.item.replaceChildren(box);
    drawProgress();
  }
  function drawProgress() {
    var done = 0;
    items.forEach(function (item, i) {
      var ok = complete(item);
      done += ok ? 1 : 0;
      ui.strip.children[i].className = (ok ? "rated" : started(item) ? "partial" : "") + (i === state.index ? " current" : "");
    });
    ui.progress.value = done;
    ui.count.textContent = done + " of " + items.length + " rated";
    ui.where.textContent = "item " + (state.index + 1) + " of " + items.length;
    ui.prev.disabled = state.index === 0;
    ui.next.disabled = state.index >= items.length - 1;
  }

  function records() {
    var out = [], incomplete = 0, rater = ui.rater.value.trim();
    items.forEach(function (item) {
      if (!complete(item)) { incomplete += started(item) ? 1 : 0; return; }
      var r = state.ratings[item.key], runs = {}, scores = {};
      item.outputs.forEach(function (o) { runs[o.side] = o.run; });
      targets.forEach(function (t) {
        var v = valueOf(r, t);
        if (v !== undefined) (scores[t.side] = scores[t.side] || {})[t.scale.name] = v;
      });
      out.push({
        rater: rater, mode: page.mode, rubric: rubric.name, rubric_hash: rubric.hash, page: page.id,
        task: item.task, doc_id: item.doc_id, sides: runs, content_hash: item.hash,
        preference: pairwise ? r.preference : null,
        preferred_run: pairwise && r.preference !== "tie" ? runs[r.preference] : null,
        scores: scores, comment: r.comment || "", time: r.time
      });
    });
    return { ratings: out, incomplete: incomplete };
  }
  function csvCell(value) {
    var text = value === null || value === undefined ? "" : String(value);
    return '"' + text.replace(/"/g, '""') + '"';
  }
  function toCsv(ratings) {
    var fixed = ["rater", "mode", "rubric", "rubric_hash", "task", "doc_id", "run_A", "run_B", "content_hash",
      "preference", "preferred_run", "comment", "time"];
    var scaleColumns = targets.map(function (t) { return t.side + "." + t.scale.name; });
    var lines = [fixed.concat(scaleColumns).map(csvCell).join(",")];
    ratings.forEach(function (r) {
      var row = fixed.map(function (k) { return k.indexOf("run_") === 0 ? r.sides[k.slice(4)] : r[k]; });
      targets.forEach(function (t) { row.push((r.scores[t.side] || {})[t.scale.name]); });
      lines.push(row.map(csvCell).join(","));
    });
    return lines.join("\r\n") + "\r\n";
  }
  function download(name, type, text) {
    var url = URL.createObjectURL(new Blob([text], { type: type }));
    var a = el("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 2000);
  }
  function exportAs(kind) {
    var rater = ui.rater.value.trim();
    if (!rater) { say("Enter your rater id (top left) before you export."); ui.rater.focus(); return; }
    var got = records();
    if (!got.ratings.length) { say("Nothing to export yet: no item is completely rated."); return; }
    var name = "ratings-" + rater.replace(/[^A-Za-z0-9_-]+/g, "_") + "-" + page.id.slice(0, 8) + "." + kind;
    if (kind === "json") {
      download(name, "application/json", JSON.stringify({
        format: data.format, version: 1, page: page.id, exported: new Date().toISOString(), rater: rater,
        rubric: rubric, ratings: got.ratings
      }, null, 1) + "\n");
    } else {
      download(name, "text/csv", toCsv(got.ratings));
    }
    say("Exported " + got.ratings.length + " rating" + (got.ratings.length === 1 ? "" : "s") + " to " + name +
      (got.incomplete ? "; " + got.incomplete + " incomplete item" + (got.incomplete === 1 ? " was" : "s were") + " left out" : "") + ".");
  }

  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var target = e.target, typing = target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"));
    if (typing) { if (e.key === "Escape") target.blur(); return; }
    var key = e.key;
    if (key === "ArrowRight" || key === "n") go(state.index + 1);
    else if (key === "ArrowLeft" || key === "p") go(state.index - 1);
    else if (key === "u") nextUnrated();
    else if (key === "?") toggleHelp();
    else if (pairwise && (key === "a" || key === "b" || key === "t")) setPreference(key === "t" ? "tie" : key.toUpperCase());
    else if (/^[0-9]$/.test(key) && targets.length) {
      var t = targets[state.cursor], v = Number(key);
      if (v >= t.scale.min && v <= t.scale.max) setValue(t, v);
      else say(t.scale.label + " takes " + t.scale.min + " to " + t.scale.max + ".");
    } else if ((key === "ArrowDown" || key === "ArrowUp") && targets.length) {
      state.cursor = Math.max(0, Math.min(targets.length - 1, state.cursor + (key === "ArrowDown" ? 1 : -1)));
      draw();
    } else if (key === "c" && rubric.comment) $("rv-comment").focus();
    else return;
    e.preventDefault();
  }
  function toggleHelp() { ui.help.hidden = !ui.help.hidden; }

  items.forEach(function (item, i) {
    var b = button("", "", function () { go(i); });
    b.title = "item " + (i + 1) + ": " + item.task + " doc " + item.doc_id;
    b.setAttribute("aria-label", b.title);
    ui.strip.appendChild(b);
  });
  var kept = load();
  document.addEventListener("keydown", onKey);
  ui.prev.addEventListener("click", function () { go(state.index - 1); });
  ui.next.addEventListener("click", function () { go(state.index + 1); });
  ui.rater.addEventListener("input", save);
  ui.auto.addEventListener("change", save);
  ui.json.addEventListener("click", function () { exportAs("json"); });
  ui.csv.addEventListener("click", function () { exportAs("csv"); });
  ui.helpToggle.addEventListener("click", toggleHelp);
  if (kept) say(items.length ? "Ratings are saved in this browser as you go. Press ? for the keys." : "This page has no items.");
  if (items.length) draw();
  document.documentElement.setAttribute("data-ready", "1");
})();
