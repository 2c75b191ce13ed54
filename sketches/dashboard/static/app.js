// arduino-mesh dashboard: draws /circuit.json as SVG and animates it from the /feed websocket.
// Plain ES2020, no modules, no dependencies. Renders at most once per animation frame.
(() => {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  const NODE_W = 190, NODE_H = 108, COL_GAP = 84, ROW_GAP = 28, PAD = 24, UNWIRED_GAP = 72;   // room for the subscriptions
  const PULSE_MS = 450;      // a dot's trip along a wire
  const SOUND_MS = 300;      // how long a buzzer stays "sounding" after a sound
  const LOG_MAX = 100;       // entries kept in #log
  const BACKOFF_MIN = 500, BACKOFF_MAX = 5000;
  const STATES = { up: "up", down: "down", connecting: "connecting", "no port": "no-port" };
  const PRESENCE = { online: "up", offline: "down" };   // a node's $state, drawn as up or down

  const token = new URLSearchParams(location.search).get("token");
  const query = token !== null ? "?token=" + encodeURIComponent(token) : "";

  const stats = (window.dashboardStats = { frames: 0, snapshots: 0 });
  const $ = (id) => document.getElementById(id);
  const ui = {
    feed: $("feed-state"), name: $("circuit-name"), total: $("total"), rate: $("rate"),
    svg: $("circuit"), title: $("circuit-title"), subs: $("subs"), wires: $("wires"), pulses: $("pulses"),
    nodes: $("nodes"), log: $("log"), empty: $("circuit-empty"), capped: $("capped"),
    strip: $("strip"), stripAxis: $("strip-axis"), stripLabels: $("strip-labels"), stripScroll: $("strip-scroll"),
    stripClip: $("strip-clip-rect"), stripEmpty: $("strip-empty"), stripWindow: $("strip-window"),
  };

  let circuitText = null;      // normalised JSON of the circuit currently drawn
  let lastCircuitNames = [];   // the circuit's nodes, in its order: the strip's rows follow it
  let view = null;             // { nodes: Map<name, NodeView>, out: Map<name, WireView[]>, pos, width, height }
  let graph = null;            // the subscriptions to draw: { edges, dangling, total }, checked (takeGraph)
  let graphText = null;        // normalised JSON of it, to redraw only what changed
  let graphDirty = false;      // a new graph, or a new layout: draw the subscriptions in the next frame
  let pending = null;          // newest snapshot not rendered yet
  let pendingRecent = [];      // recent messages of every snapshot not rendered yet
  let pendingFull = false;     // a full snapshot (a new feed's first) is among them: the log starts over
  let lastSeq = 0;             // the newest message number logged: a message is never logged twice
  let lastSnapshot = null;     // last rendered snapshot (re-applied after a redraw)
  let prevCounts = null;       // counts at the last render, to see what grew
  let frameRequested = false;
  const flying = new Set();    // wires with a pulse in flight

  // ---------------------------------------------------------------- helpers

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  // A polyline with rounded corners (radius r, smaller where a segment is short).
  function roundedPath(pts, r) {
    let d = `M${pts[0][0]} ${pts[0][1]}`;
    for (let i = 1; i < pts.length - 1; i++) {
      const [px, py] = pts[i - 1], [x, y] = pts[i], [nx, ny] = pts[i + 1];
      const l1 = Math.hypot(x - px, y - py), l2 = Math.hypot(nx - x, ny - y);
      const k = Math.min(r, l1 / 2, l2 / 2);
      if (!k) { d += ` L${x} ${y}`; continue; }
      d += ` L${x - ((x - px) / l1) * k} ${y - ((y - py) / l1) * k}`;
      d += ` Q${x} ${y} ${x + ((nx - x) / l2) * k} ${y + ((ny - y) / l2) * k}`;
    }
    const [lx, ly] = pts[pts.length - 1];
    return d + ` L${lx} ${ly}`;
  }

  // 41 points along a path, evenly spaced by length, as a flat [x0, y0, x1, y1, ...] array.
  function sample(path) {
    const n = 40, out = [];
    let len = 0;
    try { len = path.getTotalLength(); } catch { /* not rendered */ }
    for (let i = 0; i <= n; i++) {
      const p = len ? path.getPointAtLength((len * i) / n) : { x: 0, y: 0 };
      out.push(p.x, p.y);
    }
    return out;
  }

  function setText(node, text) {
    text = String(text);
    if (node.textContent !== text) node.textContent = text;
  }

  function setAttr(node, name, value) {
    value = String(value);
    if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  }

  function clip(text, max) {
    text = String(text);
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  // Set an SVG text to `text`, cut with an ellipsis until it is no wider than `width` pixels,
  // so that it never runs under the LED or the speaker beside it.
  function fitText(node, text, width) {
    text = String(text);
    if (node.dataset.full === text && node.dataset.width === String(width)) return;
    node.dataset.full = text;
    node.dataset.width = String(width);
    node.textContent = text;
    let measure = () => { try { return node.getComputedTextLength(); } catch { return 0; } };
    if (!measure()) measure = () => node.textContent.length * 7.6;   // not rendered: a monospace estimate
    let keep = text.length;
    while (keep > 1 && measure() > width) node.textContent = text.slice(0, --keep) + "…";
  }

  function ownerOf(key) {
    const i = key.indexOf("/");
    return i > 0 ? key.slice(0, i) : null;
  }

  function hue(name) {
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return h % 360;
  }

  function clock(t) {
    const d = new Date(t * 1000);
    if (Number.isNaN(d.getTime())) return "";
    const p = (n, w = 2) => String(n).padStart(w, "0");
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  }

  function requestFrame() {
    if (!frameRequested) {
      frameRequested = true;
      requestAnimationFrame(frame);
    }
  }

  // ---------------------------------------------------------------- layout

  // Layered layout: layer = longest path from a node with no incoming wire (back edges of
  // cycles ignored); nodes of a layer stacked in circuit order; unwired nodes in a last column.
  function layout(circuit) {
    const names = [], info = new Map();
    for (const n of Array.isArray(circuit.nodes) ? circuit.nodes : []) {
      if (n && typeof n.name === "string" && !info.has(n.name)) {
        names.push(n.name);
        info.set(n.name, n);
      }
    }
    const seen = new Set(), wires = [];
    for (const w of Array.isArray(circuit.wires) ? circuit.wires : []) {
      if (!w || !info.has(w.source) || !info.has(w.target) || w.source === w.target) continue;
      const id = `${w.source}->${w.target}`;
      if (!seen.has(id)) { seen.add(id); wires.push({ id, source: w.source, target: w.target }); }
    }

    const out = new Map(names.map((n) => [n, []]));
    const indeg = new Map(names.map((n) => [n, 0]));
    const wired = new Set();
    for (const w of wires) {
      out.get(w.source).push(w);
      indeg.set(w.target, indeg.get(w.target) + 1);
      wired.add(w.source); wired.add(w.target);
    }

    // Depth-first search from the sources first, to find the back edges of any cycle.
    const back = new Set(), state = new Map();
    const visit = (n) => {
      state.set(n, 1);
      for (const w of out.get(n)) {
        const s = state.get(w.target);
        if (s === 1) back.add(w.id);
        else if (!s) visit(w.target);
      }
      state.set(n, 2);
    };
    for (const n of names) if (wired.has(n) && indeg.get(n) === 0 && !state.has(n)) visit(n);
    for (const n of names) if (wired.has(n) && !state.has(n)) visit(n);

    const layer = new Map();
    for (const n of names) if (wired.has(n)) layer.set(n, 0);
    for (let i = 0; i < names.length; i++) {
      let changed = false;
      for (const w of wires) {
        if (back.has(w.id)) continue;
        const l = layer.get(w.source) + 1;
        if (l > layer.get(w.target)) { layer.set(w.target, l); changed = true; }
      }
      if (!changed) break;
    }

    // Wired nodes in layered columns; unwired ones (the dashboard itself, say) in rows below.
    const columns = [], unwired = [];
    for (const n of names) {
      if (wired.has(n)) (columns[layer.get(n)] = columns[layer.get(n)] || []).push(n);
      else unwired.push(n);
    }
    const cols = columns.filter(Boolean);
    const perRow = Math.max(cols.length, Math.min(unwired.length, 4), 1);
    const rows = Math.max(0, ...cols.map((c) => c.length));
    const colHeight = (k) => (k > 0 ? k * NODE_H + (k - 1) * ROW_GAP : 0);
    const pos = new Map();
    cols.forEach((col, ci) => {
      const top = PAD + (colHeight(rows) - colHeight(col.length)) / 2;
      col.forEach((n, ri) => pos.set(n, { x: PAD + ci * (NODE_W + COL_GAP), y: top + ri * (NODE_H + ROW_GAP), col: ci }));
    });
    const loop = back.size ? 48 : 0;   // room for the loops of back edges under the columns
    const below = PAD + colHeight(rows) + loop + (rows ? UNWIRED_GAP : 0);
    unwired.forEach((n, i) => pos.set(n, {
      x: PAD + (i % perRow) * (NODE_W + COL_GAP),
      y: below + Math.floor(i / perRow) * (NODE_H + ROW_GAP), col: -1,
    }));
    const unwiredRows = Math.ceil(unwired.length / perRow);

    const width = PAD * 2 + perRow * NODE_W + (perRow - 1) * COL_GAP + (back.size ? 18 : 0);
    const height = PAD * 2 + colHeight(rows) + loop + (rows && unwiredRows ? UNWIRED_GAP : 0) + colHeight(unwiredRows);
    for (const w of wires) {
      const a = pos.get(w.source), b = pos.get(w.target);
      // From the source's right edge to the target's left edge.
      const x0 = a.x + NODE_W, y0 = a.y + NODE_H / 2, x3 = b.x - 2, y3 = b.y + NODE_H / 2;
      if (b.col > a.col) {            // forward: a cubic S-curve when the rows differ
        const dx = (x3 - x0) / 2;
        w.d = `M${x0} ${y0} C${x0 + dx} ${y0} ${x3 - dx} ${y3} ${x3} ${y3}`;
      } else {                        // back edge of a cycle: a lane under every column
        const low = PAD + colHeight(rows) + loop / 2 + 4;
        w.d = roundedPath([[x0, y0], [x0 + 30, y0], [x0 + 30, low], [x3 - 18, low], [x3 - 18, y3], [x3, y3]], 10);
      }
    }
    return { circuit, names, info, wires, out, pos, width, height };
  }

  // ---------------------------------------------------------------- drawing

  function drawNode(node, p) {
    const name = node.name, sketch = typeof node.sketch === "string" ? node.sketch : "";
    const g = svg("g", {
      class: "node", "data-node": name, "data-sketch": sketch, "data-state": "unknown",
      transform: `translate(${p.x} ${p.y})`, role: "group", "aria-label": `${name} (${sketch}): unknown`,
    }, ui.nodes);
    svg("rect", { class: "body", width: NODE_W, height: NODE_H, rx: 12, ry: 12 }, g);
    const title = svg("text", { class: "name", x: 14, y: 26 }, g);
    title.textContent = clip(name, 15);
    const stateText = svg("text", { class: "state-label", x: NODE_W - 14, y: 25, "text-anchor": "end" }, g);
    stateText.textContent = "…";
    const sub = svg("text", { class: "sketch", x: 14, y: 43 }, g);
    sub.textContent = clip(node.address ? `${sketch} · ${node.address}` : `${sketch} · no port`, 26);

    // The value line runs from x 14 to the LED's or the speaker's left edge, less a gap.
    const v = { name, sketch, g, stateText, state: null, soundTimer: 0, textWidth: NODE_W - 28 };

    if (sketch === "iopin") {
      svg("circle", { class: "led-ring", cx: NODE_W - 26, cy: 68, r: 12 }, g);
      v.led = svg("circle", { class: "led", "data-node": name, "data-on": "0", cx: NODE_W - 26, cy: 68, r: 8 }, g);
      v.textWidth = NODE_W - 26 - 12 - 8 - 14;
    }
    if (sketch === "buzzer") {
      g.setAttribute("data-sounding", "0");
      // The outer group places the icon; the inner one is free for the CSS animation's transform.
      const at = svg("g", { transform: `translate(${NODE_W - 42} 57)`, "aria-hidden": "true" }, g);
      const sp = svg("g", { class: "speaker" }, at);
      svg("path", { class: "cone", d: "M2 8 h5 l6 -5 v18 l-6 -5 h-5 z" }, sp);
      svg("path", { class: "wave w1", d: "M16 8.5 a4.5 4.5 0 0 1 0 7" }, sp);
      svg("path", { class: "wave w2", d: "M19 5 a9 9 0 0 1 0 14" }, sp);
      v.sound = svg("text", { class: "sound", "data-node": name, x: 14, y: 71 }, g);
      v.sound.textContent = "—";
      v.textWidth = NODE_W - 42 - 8 - 14;
    } else {
      v.last = svg("text", { class: "last", "data-node": name, x: 14, y: 71 }, g);
      v.last.textContent = "";
    }

    const unit = svg("text", { class: "count-unit", x: 14, y: NODE_H - 14 }, g);
    unit.textContent = "msgs";
    v.count = svg("text", { class: "count", "data-node": name, x: 50, y: NODE_H - 13 }, g);
    v.count.textContent = "0";
    return v;
  }

  function draw(circuit) {
    const L = layout(circuit);
    for (const w of flying) w.dot.remove();
    flying.clear();
    ui.wires.replaceChildren();
    ui.pulses.replaceChildren();
    ui.nodes.replaceChildren();

    const nodes = new Map(), out = new Map();
    for (const n of L.names) {
      nodes.set(n, drawNode(L.info.get(n), L.pos.get(n)));
      out.set(n, []);
    }
    for (const w of L.wires) {
      const path = svg("path", {
        class: "wire", "data-wire": w.id, "marker-end": "url(#arrow)",
        d: w.d,
      }, ui.wires);
      out.get(w.source).push({ id: w.id, path, points: null, dot: null, start: 0 });
    }
    view = { nodes, out, pos: L.pos, width: L.width, height: L.height };
    lastCircuitNames = L.names;
    strip.relayout = true;
    graphDirty = true;

    ui.svg.setAttribute("viewBox", `0 0 ${L.width} ${L.height}`);
    const cname = typeof circuit.name === "string" && circuit.name ? circuit.name : "circuit";
    setText(ui.name, cname);
    setText(ui.title, `Circuit ${cname}: ` +
      (L.wires.length ? L.wires.map((w) => `${w.source} to ${w.target}`).join(", ") : "no wires") +
      (L.names.length ? `; nodes ${L.names.join(", ")}` : ""));
    document.title = `arduino-mesh dashboard`;
    ui.empty.hidden = L.names.length > 0;

    if (lastSnapshot) applySnapshot(lastSnapshot, [], performance.now(), false);
  }

  // ---------------------------------------------------------------- rendering

  function startPulse(w, now) {
    if (w.dot) return;                   // one in flight per wire: skip
    w.start = now;
    if (!w.points) w.points = sample(w.path);
    w.dot = svg("circle", { class: "pulse", "data-wire": w.id, r: 5, cx: w.points[0], cy: w.points[1] }, ui.pulses);
    w.path.classList.add("hot");
    flying.add(w);
  }

  function stepPulses(now) {
    for (const w of flying) {
      const t = (now - w.start) / PULSE_MS;
      if (t >= 1 || t < 0) {
        w.dot.remove();
        w.dot = null;
        w.path.classList.remove("hot");
        flying.delete(w);
        continue;
      }
      const e = t < 0.5 ? 2 * t * t : 1 - 2 * (1 - t) * (1 - t);   // ease in-out
      const pts = w.points, f = e * (pts.length / 2 - 1), i = Math.min(Math.floor(f), pts.length / 2 - 2), r = f - i;
      setAttr(w.dot, "cx", (pts[2 * i] + (pts[2 * i + 2] - pts[2 * i]) * r).toFixed(1));
      setAttr(w.dot, "cy", (pts[2 * i + 1] + (pts[2 * i + 3] - pts[2 * i + 1]) * r).toFixed(1));
    }
  }

  function sound(v) {
    setAttr(v.g, "data-sounding", "1");
    clearTimeout(v.soundTimer);
    v.soundTimer = setTimeout(() => v.g.setAttribute("data-sounding", "0"), SOUND_MS);
  }

  function applySnapshot(snap, recent, now, animate, full = false) {
    const counts = snap.counts && typeof snap.counts === "object" ? snap.counts : {};
    const last = snap.last && typeof snap.last === "object" ? snap.last : {};
    const states = snap.nodes && typeof snap.nodes === "object" ? snap.nodes : {};
    // Each node's presence from its <node>/$state: online or offline (absent: not heard yet).
    const presence = snap.presence && typeof snap.presence === "object" ? snap.presence : {};
    // Each node's latest key, as the dashboard saw it (never a system key: those are only logged).
    const latest = snap.latest && typeof snap.latest === "object" ? snap.latest : {};

    let total = 0;
    const perNode = new Map(), grown = new Set(), grownOwners = new Set();
    for (const key in counts) {
      const c = Number(counts[key]) || 0;
      total += c;
      const owner = ownerOf(key);
      if (owner === null) continue;
      perNode.set(owner, (perNode.get(owner) || 0) + c);
      if (prevCounts && c > (Number(prevCounts[key]) || 0)) {
        grown.add(key);
        grownOwners.add(owner);
      }
    }

    // The dashboard keeps a bounded number of keys; its own total stays exact.
    const heard = Number(snap.heard);
    setText(ui.total, Number.isFinite(heard) ? heard : total);
    const dropped = Number(snap.dropped) || 0;
    if (ui.capped && dropped > 0) {
      ui.capped.hidden = false;
      const keys = Number(snap.keys);
      setText(ui.capped, Number.isFinite(keys) ? `showing the ${keys} most recent keys` : "showing the most recent keys");
      ui.capped.title = `${dropped} key(s) let go: the dashboard keeps a bounded number of keys`;
    }
    const rate = Number(snap.rate);
    setText(ui.rate, Number.isFinite(rate) ? rate.toFixed(1) : "0.0");

    if (view) {
      for (const v of view.nodes.values()) {
        const seen = PRESENCE[presence[v.name]];
        const raw = seen ? presence[v.name] : states[v.name];
        const state = seen || STATES[raw] || "unknown";
        if (state !== v.state || raw !== v.raw) {
          v.state = state;
          v.raw = raw;
          v.g.setAttribute("data-state", state);
          v.g.setAttribute("data-presence", seen ? raw : "unknown");
          v.g.setAttribute("aria-label", `${v.name} (${v.sketch}): ${raw || "unknown"}`);
          v.stateText.textContent = raw || "unknown";
        }
        setText(v.count, perNode.get(v.name) || 0);

        if (v.led) setAttr(v.led, "data-on", last[`${v.name}/pin`] === "1" ? "1" : "0");
        if (v.sound) {
          const key = `${v.name}/sound`;
          const s = last[key];
          fitText(v.sound, s === undefined ? "—" : s, v.textWidth);
          if (animate && grown.has(key) && s !== "...") sound(v);
        } else if (v.last) {
          const key = latest[v.name];
          if (typeof key === "string" && key.startsWith(v.name + "/") && key in last) {
            fitText(v.last, `${key.slice(v.name.length + 1)} ${last[key]}`, v.textWidth);
          }
        }
        if (animate && grownOwners.has(v.name)) for (const w of view.out.get(v.name)) startPulse(w, now);
      }
    }
    prevCounts = counts;
    lastSnapshot = snap;
    if (full) ui.log.replaceChildren();
    if (recent.length) logMessages(recent);
  }

  function logMessages(recent) {
    const items = recent.filter((m) => m && typeof m.key === "string");
    items.sort((a, b) => (Number(a.t) || 0) - (Number(b.t) || 0));   // stable: keeps feed order on ties
    const frag = document.createDocumentFragment();
    for (let i = items.length - 1, n = 0; i >= 0 && n < LOG_MAX; i--, n++) {
      const m = items[i];
      const li = document.createElement("li");
      li.dataset.key = m.key;
      if (m.n !== undefined) li.dataset.n = String(m.n);
      const time = document.createElement("time");
      time.textContent = clock(Number(m.t));
      const key = document.createElement("span");
      key.className = "key";
      key.textContent = m.key;
      const owner = ownerOf(m.key);
      if (owner) key.style.color = `hsl(${hue(owner)} 70% 68%)`;
      const data = document.createElement("span");
      data.className = "data";
      data.textContent = m.data === undefined ? "" : String(m.data);
      li.append(time, key, " ", data);
      frag.appendChild(li);
    }
    ui.log.prepend(frag);
    while (ui.log.childElementCount > LOG_MAX) ui.log.lastElementChild.remove();
  }

  function frame(now) {
    frameRequested = false;
    let rendered = false;
    if (pending) {
      const snap = pending, recent = pendingRecent, full = pendingFull;
      pending = null;
      pendingRecent = [];
      pendingFull = false;
      applySnapshot(snap, recent, now, true, full);
      rendered = true;
    }
    if (graphDirty && view) {
      drawGraph();
      rendered = true;
    }
    if (flying.size) {
      stepPulses(now);
      rendered = true;
    }
    if (strip.rows.size || strip.height) {
      renderStrip(now);
      rendered = true;
    }
    if (rendered) stats.frames++;
    if (flying.size || strip.rows.size) requestFrame();
  }

  // ---------------------------------------------------------------- subscriptions

  // Each subscription beside the wires: a dashed edge from each node whose keys its pattern matched to the
  // subscriber, labelled with the pattern (one edge a pair of nodes, its patterns joined); a pattern that
  // matched no key heard yet is a dangling stub on top of the subscriber's card. The dashboard matches
  // (sketches/dashboard/subscriptions.py); the page only draws. Nodes stay where the wires put them, so a
  // subscription that comes or goes moves nothing else.
  const SUB_EDGES = 300;       // edges (and dangling patterns) the page takes from a graph at most: the dashboard's bound
  const SUB_NAME = 256;        // characters of a node's name or a pattern at most (the mesh's NAME_MAX and LONGEST)
  const SUB_LABEL = 22;        // characters of an edge's label shown (its title has them all)
  const SUB_DANGLING = 2;      // dangling patterns shown on a card; the last one says how many more there are
  const SUB_SPREAD = 16;       // pixels between two edges' ends on one card

  function takeGraph(msg) {
    const name = (x) => typeof x === "string" && x.length > 0 && x.length <= SUB_NAME;
    const source = (x) => (x === "grid" ? "grid" : "run time");
    const edges = [], dangling = [];
    for (const e of Array.isArray(msg.edges) ? msg.edges.slice(0, SUB_EDGES) : []) {
      if (e && name(e.publisher) && name(e.subscriber) && name(e.pattern)) {
        edges.push({ publisher: e.publisher, subscriber: e.subscriber, pattern: e.pattern, source: source(e.source) });
      }
    }
    for (const e of Array.isArray(msg.dangling) ? msg.dangling.slice(0, SUB_EDGES) : []) {
      if (e && name(e.subscriber) && name(e.pattern)) {
        dangling.push({ subscriber: e.subscriber, pattern: e.pattern, source: source(e.source) });
      }
    }
    const total = Number(msg.total);
    const text = JSON.stringify([edges, dangling]);
    if (text === graphText) return;
    graphText = text;
    graph = { edges, dangling, total: Number.isSafeInteger(total) && total >= 0 ? total : edges.length };
    graphDirty = true;
  }

  function subTitle(subscriber, patterns, sources) {
    return patterns.map((p, i) => `${subscriber} subscribes to ${p} (${sources[i] === "grid" ? "grid.yaml" : "at run time"})`)
      .join("\n");
  }

  // Where along the cubic curve `c` ([x0, y0, x1, y1, x2, y2, x3, y3]) a label `w` pixels wide overlaps no box of
  // `placed` (its middle first, then further out); the middle if nowhere. The box is added to `placed`.
  function labelSpot(c, w, placed) {
    const at = (t) => {
      const u = 1 - t, a = u * u * u, b = 3 * u * u * t, d = 3 * u * t * t, e = t * t * t;
      return [a * c[0] + b * c[2] + d * c[4] + e * c[6], a * c[1] + b * c[3] + d * c[5] + e * c[7]];
    };
    const box = ([x, y]) => [x - w / 2, y - 8, x + w / 2, y + 8];
    const free = (r) => placed.every((q) => r[2] < q[0] || q[2] < r[0] || r[3] < q[1] || q[3] < r[1]);
    let spot = at(0.5);
    for (const t of [0.5, 0.35, 0.65, 0.22, 0.78]) {
      if (free(box(at(t)))) { spot = at(t); break; }
    }
    placed.push(box(spot));
    return spot;
  }

  function drawGraph() {
    graphDirty = false;
    ui.subs.replaceChildren();
    if (!view) return;
    const pos = view.pos, edges = graph ? graph.edges : [], dangling = graph ? graph.dangling : [];
    // One edge a pair of nodes, with all its patterns.
    const pairs = new Map();
    for (const e of edges) {
      if (!pos.has(e.publisher) || !pos.has(e.subscriber)) continue;
      const id = `${e.publisher}->${e.subscriber}`;
      let pair = pairs.get(id);
      if (!pair) pairs.set(id, (pair = { id, publisher: e.publisher, subscriber: e.subscriber, patterns: [], sources: [] }));
      if (!pair.patterns.includes(e.pattern)) { pair.patterns.push(e.pattern); pair.sources.push(e.source); }
    }
    // The ends on each card, spread along its edge in the order of the other end's place.
    const ends = new Map();
    const end = (node, other, pair) => {
      if (!ends.has(node)) ends.set(node, []);
      ends.get(node).push({ pair, x: pos.get(other).x + pos.get(other).y / 1e4 });
    };
    for (const pair of pairs.values()) {
      end(pair.publisher, pair.subscriber, pair);
      if (pair.subscriber !== pair.publisher) end(pair.subscriber, pair.publisher, pair);
    }
    const at = new Map();   // `${node} ${pair id}` -> x of that end
    for (const [node, list] of ends) {
      list.sort((a, b) => a.x - b.x);
      const p = pos.get(node), step = Math.min(SUB_SPREAD, (NODE_W - 60) / Math.max(list.length, 1));
      list.forEach((e, i) => at.set(`${node} ${e.pair.id}`, p.x + NODE_W / 2 + (i - (list.length - 1) / 2) * step));
    }
    let bottom = view.height;
    const placed = [];   // the labels' boxes so far: a label goes where along its edge it covers none of them
    for (const pair of pairs.values()) {
      const a = pos.get(pair.publisher), b = pos.get(pair.subscriber);
      let x0 = at.get(`${pair.publisher} ${pair.id}`), x3 = at.get(`${pair.subscriber} ${pair.id}`), y0, y3, c1, c2;
      if (pair.publisher === pair.subscriber) {          // a node subscribed to its own keys: a loop under it
        x0 -= 24; x3 = x0 + 48; y0 = y3 = a.y + NODE_H; c1 = c2 = y0 + 36;
      } else if (b.y >= a.y + NODE_H) {                  // the subscriber below: bottom to top
        y0 = a.y + NODE_H; y3 = b.y - 3;
        const k = Math.max(24, (y3 - y0) / 2);
        c1 = y0 + k; c2 = y3 - k;
      } else if (a.y >= b.y + NODE_H) {                  // the subscriber above: top to bottom
        y0 = a.y; y3 = b.y + NODE_H + 3;
        const k = Math.max(24, (y0 - y3) / 2);
        c1 = y0 - k; c2 = y3 + k;
      } else {                                           // side by side: under both
        y0 = a.y + NODE_H; y3 = b.y + NODE_H + 3;
        c1 = c2 = Math.max(y0, y3) + 40;
      }
      bottom = Math.max(bottom, c1 + PAD, c2 + PAD);
      const g = svg("g", {
        class: "sub", "data-sub": pair.id, "data-publisher": pair.publisher, "data-subscriber": pair.subscriber,
        "data-patterns": pair.patterns.join("\n"),
      }, ui.subs);
      svg("title", {}, g).textContent = subTitle(pair.subscriber, pair.patterns, pair.sources);
      svg("path", {
        class: "sub-edge", d: `M${x0} ${y0} C${x0} ${c1} ${x3} ${c2} ${x3} ${y3}`, "marker-end": "url(#sub-arrow)",
      }, g);
      const text = clip(pair.patterns.join(", "), SUB_LABEL);
      const spot = labelSpot([x0, y0, x0, c1, x3, c2, x3, y3], 6.4 * text.length + 6, placed);
      const label = svg("text", { class: "sub-label", x: spot[0], y: spot[1] + 4, "text-anchor": "middle" }, g);
      label.textContent = text;   // text, never markup
    }
    // Dangling patterns, on top of each subscriber's card.
    const lonely = new Map();
    for (const e of dangling) {
      if (!pos.has(e.subscriber)) continue;
      if (!lonely.has(e.subscriber)) lonely.set(e.subscriber, []);
      const list = lonely.get(e.subscriber);
      if (!list.some((d) => d.pattern === e.pattern)) list.push(e);
    }
    for (const [subscriber, list] of lonely) {
      const p = pos.get(subscriber);
      let x = p.x + 14;
      list.forEach((e, i) => {
        if (i >= SUB_DANGLING) return;
        const more = i === SUB_DANGLING - 1 && list.length > SUB_DANGLING;
        const rest = more ? list.slice(i) : [e];
        const g = svg("g", {
          class: "sub-dangling", "data-subscriber": subscriber, "data-pattern": e.pattern,
          "data-patterns": rest.map((d) => d.pattern).join("\n"),
        }, ui.subs);
        svg("title", {}, g).textContent = subTitle(subscriber, rest.map((d) => d.pattern), rest.map((d) => d.source)) +
          "\nno key heard matches it yet";
        svg("path", { class: "sub-stub", d: `M${x} ${p.y - 2} V${p.y - 14}` }, g);
        svg("circle", { class: "sub-end", cx: x, cy: p.y - 17, r: 3 }, g);
        const label = svg("text", { class: "sub-label", x: x + 7, y: p.y - 13 }, g);
        label.textContent = more ? `${clip(e.pattern, 10)} +${list.length - i - 1} more` : clip(e.pattern, 14);
        x += 7 + 6.6 * label.textContent.length + 14;
      });
    }
    setAttr(ui.svg, "viewBox", `0 0 ${view.width} ${Math.ceil(bottom)}`);
  }

  // ---------------------------------------------------------------- strip

  // The logic-analyzer strip: the last `window` seconds of each key the dashboard hears, now at the
  // right edge. A key whose every payload is 0 or 1 is a 1-bit wire, drawn as a square waveform; a key
  // whose every payload is a number is a trace, a step line scaled to its least and greatest value in
  // the window, its current value beside its name; any other key is a row of marks, each value in its title. Times come as seconds before the
  // snapshot ("ago"), placed on this page's own clock when the snapshot arrives: no clock agreement.
  // Shapes sit in seconds inside one group, scaled and moved once a frame (non-scaling strokes),
  // so scrolling redraws nothing.
  const STRIP_ROW_H = 28, STRIP_LABEL_W = 170, STRIP_AXIS_H = 18, STRIP_RIGHT = 14;
  // The page's own bounds (the dashboard's are the same): points a key keeps at most (a trace's vertices are
  // twice that), and rows.
  const STRIP_POINTS = 2000, STRIP_ROWS = 500;
  const STRIP_TEXT = 32;   // characters of a value kept (the dashboard's STRIP_TEXT): a title, not the full value
  // Points drawn in one animation frame at most: past it, the other rows that changed wait for the next frame,
  // so that a snapshot that touches every row costs a few frames, not one long one.
  const FRAME_POINTS = 20000;
  const HIGH = 5, LOW = STRIP_ROW_H - 7;          // a bit's levels, and a trace's top and bottom, within its row
  const VALUE_W = 58;                             // pixels of a trace's current value, right of its key
  const KINDS = ["bit", "integer", "real", "string"];
  const INTEGER = /^[+-]?[0-9]+$/, REAL = /^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

  // The same rule as the dashboard's kind_of (sketches/dashboard/strip.py) and the VCD trace's.
  function kindOfValue(v) {
    if (v === "0" || v === "1") return "bit";
    if (INTEGER.test(v)) return "integer";
    if (REAL.test(v)) return "real";
    return "string";
  }
  function wider(a, b) { return KINDS.indexOf(a) >= KINDS.indexOf(b) ? a : b; }
  const numeric = (kind) => kind === "integer" || kind === "real";

  // A payload as a number, strictly: the kinds' own patterns (no "NaN", " 1", "0x1", "1_0"), so that a row is
  // a trace only of what its kind says; a number too large for a double (1e309) is +-Infinity, and is drawn
  // at the row's top or bottom, out of the scale; anything else is NaN and not drawn.
  function numberOf(v) {
    return INTEGER.test(v) || REAL.test(v) ? Number(v) : NaN;
  }

  // Where `x` sits between `lo` and `hi` (finite, lo <= hi), 0 to 1; halves, so that hi - lo cannot overflow
  // (-1e308 to 1e308); the middle when all are equal; +-Infinity at an end.
  function scaled(x, lo, hi) {
    if (x === Infinity) return 1;
    if (x === -Infinity) return 0;
    const span = hi / 2 - lo / 2;
    if (!(span > 0)) return 0.5;
    return Math.min(1, Math.max(0, (x / 2 - lo / 2) / span));
  }
  const strip = {
    window: 20, limit: STRIP_POINTS,
    rows: new Map(),        // key -> { key, kind, points: [{ n, t, v }], drawn, g, label, wave, trace, marks, ... }
    width: 0, height: -1, relayout: true, prunedAt: 0, tx: "",
  };

  function clearStrip() {
    for (const row of strip.rows.values()) dropRow(row);
    strip.rows.clear();
    strip.relayout = true;
  }

  function dropRow(row) {
    if (row.g) row.g.remove();
    if (row.label) row.label.remove();
  }

  // One snapshot's strip, received at `at` (page seconds): a full one starts over.
  function takeStrip(msg, at) {
    if (msg.full === true) clearStrip();
    const s = msg.strip && typeof msg.strip === "object" ? msg.strip : null;
    if (!s) return;
    const w = Number(s.window);
    if (Number.isFinite(w) && w > 0 && w !== strip.window) { strip.window = w; strip.relayout = true; }
    const limit = Number(s.points);
    strip.limit = Number.isFinite(limit) && limit >= 1 ? Math.min(Math.floor(limit), STRIP_POINTS) : STRIP_POINTS;
    const rows = s.rows && typeof s.rows === "object" ? s.rows : {};
    for (const key of Object.keys(rows)) {
      const r = rows[key];
      if (!r || typeof r !== "object" || !Array.isArray(r.points)) continue;
      let row = strip.rows.get(key);
      if (!row) {
        if (strip.rows.size >= STRIP_ROWS) continue;
        row = {
          key, kind: "bit", points: [], drawn: null, g: null, label: null, title: null, labelText: null,
          valueText: null, wave: null, trace: null, marks: [], dirty: true,
        };
        strip.rows.set(key, row);
        strip.relayout = true;
      }
      if (KINDS.includes(r.kind)) row.kind = wider(row.kind, r.kind);
      for (const p of r.points) {
        if (!Array.isArray(p)) continue;
        const n = Number(p[0]), ago = Number(p[1]), v = clip(p[2], STRIP_TEXT);
        if (!Number.isFinite(n) || !Number.isFinite(ago) || ago < 0) continue;
        const prev = row.points[row.points.length - 1];
        if (prev && n <= prev.n) continue;   // had it already (with the full snapshot)
        const t = at - Math.min(ago, 1e6);   // a hostile "ago" stays a number SVG can draw (it leaves the window)
        row.points.push({ n, t: prev ? Math.max(t, prev.t) : t, v });
        row.kind = wider(row.kind, kindOfValue(v));
        row.dirty = true;
      }
      if (row.points.length > strip.limit) shiftPoints(row, row.points.length - strip.limit);
    }
    // A key the dashboard let go (it keeps a bounded number) loses its row.
    const last = msg.last && typeof msg.last === "object" ? msg.last : null;
    if (last) {
      for (const [key, row] of strip.rows) {
        if (!Object.prototype.hasOwnProperty.call(last, key)) {
          dropRow(row);
          strip.rows.delete(key);
          strip.relayout = true;
        }
      }
    }
  }

  // Drop a row's `k` oldest points, and their marks.
  function shiftPoints(row, k) {
    if (k <= 0) return;
    row.points.splice(0, k);
    for (const m of row.marks.splice(0, Math.min(k, row.marks.length))) m.remove();
    row.dirty = true;
  }

  // Points that left the window go, except the newest before it (the level a waveform starts at).
  function prune(now) {
    const start = now - strip.window;
    for (const row of strip.rows.values()) {
      let k = 0;
      while (k + 1 < row.points.length && row.points[k + 1].t <= start) k++;
      shiftPoints(row, Math.max(k, row.points.length - strip.limit));
      if (row.kind !== "string") row.dirty = true;   // its last level runs on to now; a trace's range may change
    }
  }

  function ownerRank(key) {
    const owner = ownerOf(key);
    const i = lastCircuitNames.indexOf(owner);
    return i < 0 ? lastCircuitNames.length : i;
  }

  // Draw a row's shapes for its kind (made again when the kind widens: a bit that carries a 2 becomes a trace);
  // the number of points it drew.
  function drawRow(row, now) {
    if (row.drawn !== row.kind) {
      if (row.g) row.g.replaceChildren();
      else {
        row.g = svg("g", { class: "strip-row" }, ui.stripScroll);
        row.label = svg("g", { class: "strip-label" }, ui.stripLabels);
        row.title = svg("title", {}, row.label);
        svg("line", { class: "sep", x1: 0, x2: 1e4, y1: STRIP_ROW_H - 0.5, y2: STRIP_ROW_H - 0.5 }, row.label);
        row.labelText = svg("text", { x: 12, y: STRIP_ROW_H / 2 + 4 }, row.label);
      }
      if (row.valueText) { row.valueText.remove(); row.valueText = null; }
      row.title.textContent = row.key;
      fitText(row.labelText, row.key, STRIP_LABEL_W - 24 - (numeric(row.kind) ? VALUE_W : 0));
      row.g.setAttribute("data-key", row.key);
      row.g.setAttribute("data-kind", row.kind);
      row.label.setAttribute("data-key", row.key);
      row.label.setAttribute("data-kind", row.kind);
      row.wave = null;
      row.trace = null;
      row.marks = [];
      if (row.kind === "bit") row.wave = svg("polyline", { class: "wave", points: "", "data-high": HIGH, "data-low": LOW }, row.g);
      if (numeric(row.kind)) {
        row.trace = svg("polyline", { class: "trace", points: "", "data-high": HIGH, "data-low": LOW }, row.g);
        row.valueText = svg("text", {
          class: "value", x: STRIP_LABEL_W - 10, y: STRIP_ROW_H / 2 + 4, "text-anchor": "end",
        }, row.label);
      }
      row.drawn = row.kind;
    }
    const last = row.points[row.points.length - 1];
    const end = last ? (Math.max(last.t, now) + strip.window).toFixed(4) : "0";   // its last level runs on past now
    if (row.kind === "bit") {
      const pts = [];
      let level = null;
      for (const p of row.points) {
        const y = p.v === "1" ? HIGH : LOW;
        if (level === null) pts.push(`${p.t.toFixed(4)},${y}`);
        else if (y !== level) pts.push(`${p.t.toFixed(4)},${level}`, `${p.t.toFixed(4)},${y}`);
        level = y;
      }
      if (level !== null) pts.push(`${end},${level}`);
      setAttr(row.wave, "points", pts.join(" "));
    } else if (row.trace) {
      drawTrace(row, end);
    } else {
      for (let i = row.marks.length; i < row.points.length; i++) {
        const p = row.points[i];
        const t = p.t.toFixed(4);
        const mark = svg("line", { class: "mark", x1: t, x2: t, y1: 5, y2: STRIP_ROW_H - 6 }, row.g);
        svg("title", {}, mark).textContent = p.v;   // text, never markup
        row.marks.push(mark);
      }
    }
    row.dirty = false;
    return row.points.length;
  }

  // A numeric row: a step line through its points, scaled to the least and greatest finite value it holds, and
  // its current value (as it came, cut) right of its key; the range in the row's title and data-min/data-max.
  function drawTrace(row, end) {
    let lo = Infinity, hi = -Infinity;
    const values = row.points.map((p) => numberOf(p.v));
    for (const x of values) if (Number.isFinite(x)) { if (x < lo) lo = x; if (x > hi) hi = x; }
    if (lo > hi) lo = hi = 0;   // nothing finite: every point at an end (or not drawn)
    const pts = [];
    let y = null;
    row.points.forEach((p, i) => {
      const x = values[i];
      if (Number.isNaN(x)) return;
      const level = (LOW - (LOW - HIGH) * scaled(x, lo, hi)).toFixed(2), t = p.t.toFixed(4);
      if (y !== null && level !== y) pts.push(`${t},${y}`);
      pts.push(`${t},${level}`);
      y = level;
    });
    if (y !== null) pts.push(`${end},${y}`);
    setAttr(row.trace, "points", pts.join(" "));
    setAttr(row.trace, "data-min", String(lo));
    setAttr(row.trace, "data-max", String(hi));
    const last = row.points[row.points.length - 1];
    fitText(row.valueText, last ? last.v : "", VALUE_W - 4);   // text, never markup
    setText(row.title, `${row.key}\nnow ${last ? last.v : "-"}, least ${lo}, greatest ${hi} in the window`);
  }

  // Rows in the circuit's order of their nodes, then by key; the axis and the clip for the width.
  function layoutStrip(width) {
    if (!strip.relayout && width === strip.width) return;
    strip.relayout = false;
    const rows = [...strip.rows.values()];
    rows.sort((a, b) => ownerRank(a.key) - ownerRank(b.key) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const height = rows.length ? STRIP_AXIS_H + rows.length * STRIP_ROW_H : 0;
    rows.forEach((row, i) => {
      const y = STRIP_AXIS_H + i * STRIP_ROW_H;
      if (row.g) setAttr(row.g, "transform", `translate(0 ${y})`);
      if (row.label) setAttr(row.label, "transform", `translate(0 ${y})`);
    });
    setAttr(ui.strip, "height", height);
    ui.stripEmpty.hidden = rows.length > 0;
    setText(ui.stripWindow, String(strip.window));
    {
      const right = width - STRIP_RIGHT, plot = right - STRIP_LABEL_W;
      setAttr(ui.stripClip, "x", STRIP_LABEL_W);
      setAttr(ui.stripClip, "width", Math.max(plot, 0));
      setAttr(ui.stripClip, "height", height);
      ui.stripAxis.replaceChildren();
      if (height) {
        const step = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].find((s) => strip.window / s <= 6)
          || strip.window;
        for (let ago = 0; ago <= strip.window + 1e-9; ago += step) {
          const x = right - (ago / strip.window) * plot;
          svg("line", { x1: x, x2: x, y1: STRIP_AXIS_H - 4, y2: height }, ui.stripAxis);
          const label = svg("text", { x, y: STRIP_AXIS_H - 7, "text-anchor": ago ? "middle" : "end" }, ui.stripAxis);
          label.textContent = ago ? `-${+ago.toFixed(1)} s` : "now";
        }
      }
    }
    strip.width = width;
    strip.height = height;
  }

  // Draw what changed and scroll: `nowMs` is the frame's time (performance.now()).
  function renderStrip(nowMs) {
    const now = nowMs / 1000;
    if (now - strip.prunedAt >= 1) { prune(now); strip.prunedAt = now; }
    let budget = FRAME_POINTS;
    for (const row of strip.rows.values()) {
      if (budget <= 0) break;
      if (row.dirty) budget -= drawRow(row, now) + 1;
    }
    const width = ui.strip.clientWidth || ui.strip.parentElement.clientWidth || 600;
    layoutStrip(width);
    const right = width - STRIP_RIGHT, scale = (right - STRIP_LABEL_W) / strip.window;
    // Moved by whole pixels: repainted only when that shows (about 30 times a second, 600 px for 20 s).
    const tx = `translate(${Math.round(right - now * scale)} 0) scale(${scale.toFixed(5)} 1)`;
    if (tx !== strip.tx) { ui.stripScroll.setAttribute("transform", tx); strip.tx = tx; }
  }

  // For tests and the curious: each row's kind and points as the page holds them, and whether the row on
  // screen shows them yet (points arrive with the feed; they are drawn in the next animation frame).
  window.dashboardStrip = () => {
    const out = {};
    for (const [key, row] of strip.rows) {
      out[key] = { kind: row.kind, points: row.points.map((p) => [p.n, p.v]), drawn: !row.dirty && row.drawn === row.kind };
    }
    return out;
  };

  // ---------------------------------------------------------------- network

  let loading = false, reloadQueued = false, retryTimer = 0;

  async function loadCircuit() {
    if (loading) { reloadQueued = true; return; }
    loading = true;
    clearTimeout(retryTimer);
    try {
      const res = await fetch("/circuit.json" + query, { cache: "no-store" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const circuit = await res.json();
      const text = JSON.stringify(circuit);
      if (text !== circuitText) {
        circuitText = text;
        draw(circuit);
      }
    } catch (err) {
      console.warn("dashboard: cannot load /circuit.json:", err);
      if (circuitText === null) retryTimer = setTimeout(loadCircuit, 2000);
    } finally {
      loading = false;
      if (reloadQueued) { reloadQueued = false; loadCircuit(); }
    }
  }

  function setFeed(live) {
    setText(ui.feed, live ? "live" : "reconnecting…");
    document.body.dataset.feed = live ? "live" : "reconnecting";
  }

  let socket = null, backoff = BACKOFF_MIN, opened = false;

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}/feed${query}`);
    } catch (err) {
      console.warn("dashboard: websocket:", err);
      retry();
      return;
    }
    socket = ws;
    ws.onopen = () => {
      setFeed(true);
      if (opened || (circuitText === null && !loading)) loadCircuit();   // re-fetch on every reconnect
      opened = true;
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg && msg.type === "graph") {
        takeGraph(msg);
        if (graphDirty) requestFrame();
        return;
      }
      if (!msg || msg.type !== "snapshot") return;
      backoff = BACKOFF_MIN;
      stats.snapshots++;
      takeStrip(msg, performance.now() / 1000);
      pending = msg;
      if (msg.full === true) {           // a feed's first: the dashboard's recent history, the log starts over
        pendingFull = true;
        pendingRecent = [];
        lastSeq = 0;
      }
      for (const m of Array.isArray(msg.recent) ? msg.recent : []) {
        const n = m && Number(m.n);
        if (Number.isFinite(n) && n > 0) {
          if (n <= lastSeq) continue;    // already logged (it came with the full snapshot too)
          lastSeq = n;
        }
        pendingRecent.push(m);
      }
      if (pendingRecent.length > LOG_MAX) pendingRecent.splice(0, pendingRecent.length - LOG_MAX);
      requestFrame();
    };
    ws.onerror = () => { try { ws.close(); } catch { /* closing anyway */ } };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = null;
      retry();
    };
  }

  function retry() {
    setFeed(false);
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, BACKOFF_MAX);
  }

  loadCircuit();
  connect();
})();
