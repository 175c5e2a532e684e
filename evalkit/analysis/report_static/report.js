// evalkit report: the sample browser. Data comes from the JSON block; text is only ever set with
// textContent / text nodes, never parsed as HTML.
(function () {
  "use strict";
  var PAGE_SIZE = 20;
  var sets = JSON.parse(document.getElementById("evalkit-data").textContent).sets;
  var $ = function (id) { return document.getElementById(id); };
  var ui = {
    tasks: $("sb-tasks"), model: $("sb-model"), search: $("sb-search"), wrong: $("sb-wrong"), sort: $("sb-sort"),
    status: $("sb-status"), list: $("sb-list"), prev: $("sb-prev"), next: $("sb-next"), page: $("sb-page")
  };
  var state = { task: null, set: null, query: "", wrongOnly: false, sort: "doc", page: 0, rows: [] };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Append `text` to `parent` with each case-insensitive occurrence of `query` wrapped in <mark>.
  function highlighted(parent, text, query) {
    if (!query) { parent.appendChild(document.createTextNode(text)); return parent; }
    var lower = text.toLowerCase(), at = 0, hit;
    while ((hit = lower.indexOf(query, at)) !== -1 && query.length > 0) {
      parent.appendChild(document.createTextNode(text.slice(at, hit)));
      parent.appendChild(el("mark", null, text.slice(hit, hit + query.length)));
      at = hit + query.length;
    }
    parent.appendChild(document.createTextNode(text.slice(at)));
    return parent;
  }

  function haystack(sample) {
    if (sample._h === undefined) {
      sample._h = [String(sample.id), sample.prompt, sample.pred].concat(sample.target).join("\n").toLowerCase();
    }
    return sample._h;
  }

  function formatScore(value) {
    if (value === null || value === undefined) return "—";
    if (typeof value !== "number") return String(value);
    return Math.abs(value) >= 1000 ? value.toExponential(3) : String(Math.round(value * 10000) / 10000);
  }

  function firstScore(sample, metric) {
    var v = sample.scores[metric];
    return typeof v === "number" ? v : NaN;
  }

  function refilter() {
    var set = state.set, query = state.query, rows = [];
    var samples = set ? set.samples : [];
    for (var i = 0; i < samples.length; i++) {
      var s = samples[i];
      if (state.wrongOnly && s.ok !== 0) continue;
      if (query && haystack(s).indexOf(query) === -1) continue;
      rows.push(s);
    }
    if (state.sort !== "doc" && set) {
      var parts = state.sort.split(":"), metric = parts[1], sign = parts[0] === "asc" ? 1 : -1;
      rows.sort(function (a, b) {
        var x = firstScore(a, metric), y = firstScore(b, metric);
        if (isNaN(x)) return isNaN(y) ? 0 : 1;
        if (isNaN(y)) return -1;
        return sign * (x - y);
      });
    }
    state.rows = rows;
    state.page = 0;
    draw();
  }

  function field(cls, title, text) {
    var node = el("div", "field " + cls);
    node.appendChild(el("span", null, title));
    node.appendChild(highlighted(el("pre"), text, state.query));
    return node;
  }

  function card(s, set) {
    var box = el("article", "sample" + (s.ok === 1 ? " ok" : s.ok === 0 ? " wrong" : ""));
    var head = el("div", "head");
    head.appendChild(el("b", null, "doc " + s.id));
    if (s.ok === 1) head.appendChild(el("span", "badge ok", "✓ correct"));
    if (s.ok === 0) head.appendChild(el("span", "badge wrong", "✗ wrong"));
    set.metrics.forEach(function (m) { head.appendChild(el("span", null, m + " " + formatScore(s.scores[m]))); });
    box.appendChild(head);
    if (s.prompt !== "") box.appendChild(field("prompt", "prompt", s.prompt));
    var answers = el("div", "answers");
    if (s.pred !== "") answers.appendChild(field("pred", "prediction", s.pred));
    s.target.forEach(function (t, i) {
      answers.appendChild(field("target", s.target.length > 1 ? set.target + " " + (i + 1) : set.target, t));
    });
    box.appendChild(answers);
    if (s.extra) box.appendChild(el("div", "extra", s.extra));
    return box;
  }

  function draw() {
    var set = state.set, total = set ? set.samples.length : 0, n = state.rows.length;
    var pages = Math.max(1, Math.ceil(n / PAGE_SIZE)), start = state.page * PAGE_SIZE;
    var fragment = document.createDocumentFragment();
    state.rows.slice(start, start + PAGE_SIZE).forEach(function (s) { fragment.appendChild(card(s, set)); });
    ui.list.replaceChildren(fragment);
    if (!set) ui.status.textContent = "No samples in these results.";
    else if (set.missing) ui.status.textContent = set.missing;
    else ui.status.textContent = n === 0 ? "No sample matches." :
      "Showing " + (start + 1) + "–" + Math.min(start + PAGE_SIZE, n) + " of " + n +
      (n !== total ? " matching (" + total + " in " + set.task + ")" : " samples");
    ui.page.textContent = "page " + (state.page + 1) + " of " + pages;
    ui.prev.disabled = state.page === 0;
    ui.next.disabled = state.page >= pages - 1;
  }

  function chooseSet(index) {
    var set = sets[index];
    state.set = set;
    ui.wrong.disabled = !set.has_correct;
    ui.wrong.parentNode.title = set.has_correct ? "only samples whose answer is wrong" :
      "this task has no single right answer; order by score instead";
    if (!set.has_correct) { ui.wrong.checked = false; state.wrongOnly = false; }
    var options = [["doc", "document order"]];
    set.metrics.forEach(function (m) {
      options.push(["asc:" + m, m + ": lowest first"], ["desc:" + m, m + ": highest first"]);
    });
    var keep = options.some(function (o) { return o[0] === state.sort; });
    ui.sort.replaceChildren.apply(ui.sort, options.map(function (o) {
      var opt = el("option", null, o[1]); opt.value = o[0]; return opt;
    }));
    state.sort = keep ? state.sort : "doc";
    ui.sort.value = state.sort;
    refilter();
  }

  function chooseTask(task) {
    state.task = task;
    Array.prototype.forEach.call(ui.tasks.children, function (b) {
      b.setAttribute("aria-selected", b.dataset.task === task ? "true" : "false");
    });
    var previous = state.set ? state.set.model : null, chosen = null;
    var options = [];
    sets.forEach(function (set, i) {
      if (set.task !== task) return;
      var opt = el("option", null, set.model + " (" + set.run + ", " + set.samples.length + ")");
      opt.value = String(i);
      options.push(opt);
      if (chosen === null || set.model === previous) chosen = i;
    });
    ui.model.replaceChildren.apply(ui.model, options);
    ui.model.value = String(chosen);
    chooseSet(chosen);
  }

  var tasks = [];
  sets.forEach(function (set) { if (tasks.indexOf(set.task) === -1) tasks.push(set.task); });
  tasks.sort();
  tasks.forEach(function (task) {
    var button = el("button", null, task);
    button.type = "button";
    button.dataset.task = task;
    button.setAttribute("role", "tab");
    button.addEventListener("click", function () { chooseTask(task); });
    ui.tasks.appendChild(button);
  });

  var timer = null;
  ui.search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { state.query = ui.search.value.trim().toLowerCase(); refilter(); }, 120);
  });
  ui.wrong.addEventListener("change", function () { state.wrongOnly = ui.wrong.checked; refilter(); });
  ui.sort.addEventListener("change", function () { state.sort = ui.sort.value; refilter(); });
  ui.model.addEventListener("change", function () { chooseSet(Number(ui.model.value)); });
  ui.prev.addEventListener("click", function () { state.page -= 1; draw(); });
  ui.next.addEventListener("click", function () { state.page += 1; draw(); });

  if (tasks.length) chooseTask(tasks[0]); else draw();
  document.documentElement.setAttribute("data-ready", "1");
})();
