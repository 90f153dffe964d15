// The circuit page's behaviour: hover values, the node panel, attention heatmaps.
// Written for sparse_gpt's viewer; no libraries, no network. Everything shown comes from
// the page's embedded JSON (#circuit-data), computed by `python -m launch.view`.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('circuit-data').textContent);
  const svg = document.getElementById('graph');
  const panel = document.getElementById('panel');
  const tip = document.getElementById('tip');

  // Each node's edge elements, found once: a click touches only its own edges.
  const incident = new Map();
  for (const line of svg.querySelectorAll('[data-edge]')) {
    for (const end of line.dataset.edge.split('->')) {
      if (!incident.has(end)) incident.set(end, []);
      incident.get(end).push(line);
    }
  }

  const esc = (s) => String(s).replace(/[&<>"]/g,
      (ch) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[ch]));
  // Whitespace made visible, so a token of spaces or a newline can be seen.
  const shown = (piece) => esc(piece).replace(/\n/g, '\u21b5').replace(/\t/g, '\u21e5')
      .replace(/ /g, '\u00b7');
  const fmt = (x) => (x === null || x === undefined) ? '\u2014' :
      (Math.abs(x) >= 1e-3 || x === 0 ? x.toFixed(4) : x.toExponential(2));
  const signed = (x) => (x >= 0 ? '+' : '') + fmt(x);

  function shade(value, scale) {
    const a = Math.min(1, Math.abs(value) / (scale || 1));
    return value >= 0 ? `rgba(31,111,180,${0.85 * a})` : `rgba(200,48,40,${0.85 * a})`;
  }

  function nodeTip(i) {
    const n = data.nodes[i];
    return `<b>${esc(n.name)}</b> ${esc(n.label)}<br>ablated alone: task loss ` +
        `${fmt(n.ablated_loss)} (${signed(n.ablated_loss - data.circuit_loss)})`;
  }

  svg.addEventListener('mousemove', (ev) => {
    const t = ev.target;
    let text = null;
    if (t.dataset && t.dataset.edge) {
      text = `${esc(t.dataset.edge.replace('->', ' \u2192 '))}<br>weight ${esc(t.dataset.w)}`;
    } else if (t.dataset && t.dataset.node) {
      text = nodeTip(Number(t.dataset.i));
    }
    if (text === null) { tip.style.display = 'none'; return; }
    tip.innerHTML = text;
    tip.style.display = 'block';
    tip.style.left = (ev.pageX + 14) + 'px';
    tip.style.top = (ev.pageY + 10) + 'px';
  });
  svg.addEventListener('mouseleave', () => { tip.style.display = 'none'; });

  let selected = null;
  svg.addEventListener('click', (ev) => {
    const t = ev.target;
    if (t.dataset && t.dataset.node) select(Number(t.dataset.i));
  });

  function select(i) {
    if (selected !== null) {
      const old = data.nodes[selected].name;
      svg.querySelector(`[data-node="${old}"]`).classList.remove('selected');
      for (const line of incident.get(old) || []) line.classList.remove('hl');
    }
    selected = i;
    const n = data.nodes[i];
    svg.querySelector(`[data-node="${n.name}"]`).classList.add('selected');
    for (const line of incident.get(n.name) || []) line.classList.add('hl');
    svg.classList.add('focus');
    panel.innerHTML = panelHtml(n);
  }

  function edgeList(name) {
    const ins = [], outs = [];
    for (const line of incident.get(name) || []) {
      const [s, t] = line.dataset.edge.split('->');
      (t === name ? ins : outs).push([t === name ? s : t, Number(line.dataset.w)]);
    }
    const list = (xs) => xs.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, 6)
        .map(([other, w]) => `<li><code>${esc(other)}</code> ${signed(w)}</li>`).join('');
    return `<p>${ins.length} edges in, ${outs.length} out (strongest first)</p>` +
        `<div class="edges"><ul>${list(ins) || '<li>none</li>'}</ul>` +
        `<ul>${list(outs) || '<li>none</li>'}</ul></div>`;
  }

  function activations(n) {
    const scale = Math.max(1e-9, ...n.acts.flat().map(Math.abs));
    return n.acts.map((row, b) => {
      const seq = data.sequences[b];
      const tokens = seq.tokens.map((piece, p) =>
          `<span class="tok" style="background:${shade(row[p], scale)}" ` +
          `title="${esc(row[p])}">${shown(piece)}</span>`).join('');
      return `<div class="seq"><span class="pair">pair ${Math.floor(b / 2) + 1}` +
          `${b % 2 ? 'b' : 'a'}</span>${tokens} <span class="cand">\u2192 ` +
          `${shown(seq.correct)} / ${shown(seq.incorrect)}</span></div>`;
    }).join('');
  }

  function contexts(n) {
    const {left, right, windows} = data.context;
    return n.top.map(([w, p, v]) => {
      const tokens = windows[w];
      const before = tokens.slice(Math.max(0, p - left), p).map(shown).join('');
      const after = tokens.slice(p + 1, p + 1 + right).map(shown).join('');
      return `<div class="ctx"><span class="v">${fmt(v)}</span><span class="l">` +
          `${before}</span><mark>${shown(tokens[p])}</mark><span class="r">${after}</span>` +
          `</div>`;
    }).join('');
  }

  function panelHtml(n) {
    const mean = data.ablation === 'mean' ? fmt(n.mean) :
        (data.ablation === 'zero' ? '0 (zero ablation)' :
         'its value on the pair\u2019s other prompt (resample ablation)');
    return `<h2><code>${esc(n.name)}</code></h2><p class="sub">${esc(n.label)}</p>` +
        `<table class="kv"><tr><th>ablation value (mean)</th><td>${mean}</td></tr>` +
        `<tr><th>circuit task loss</th><td>${fmt(data.circuit_loss)}</td></tr>` +
        `<tr><th>with just this node ablated</th><td>${fmt(n.ablated_loss)} ` +
        `(${signed(n.ablated_loss - data.circuit_loss)})</td></tr></table>` +
        `<p class="note">Scored on ${esc(data.scored_on)}.</p>` + edgeList(n.name) +
        `<h3>Activation on task prompts (in the circuit)</h3>${activations(n)}` +
        `<h3>Top-activating contexts (full model, validation text)</h3>` +
        `<div class="contexts">${contexts(n)}</div>`;
  }

  // Attention heatmaps: one canvas per kept head, both prompts of the first pair.
  for (const canvas of document.querySelectorAll('canvas[data-head]')) {
    const head = data.heads[Number(canvas.dataset.head)];
    const sizes = head.patterns.map((p) => p.length);
    const cell = Math.max(3, Math.min(12, Math.floor(260 / Math.max(...sizes))));
    const gap = 16;
    canvas.width = sizes.reduce((a, s) => a + s * cell + gap, 0);
    canvas.height = Math.max(...sizes) * cell;
    const ctx = canvas.getContext('2d');
    let x0 = 0;
    head.patterns.forEach((pattern) => {
      pattern.forEach((row, q) => row.forEach((p, k) => {
        ctx.fillStyle = `rgba(20,60,140,${Math.min(1, p)})`;
        ctx.fillRect(x0 + k * cell, q * cell, cell, cell);
      }));
      ctx.strokeStyle = '#bbb';
      ctx.strokeRect(x0 + 0.5, 0.5, pattern.length * cell - 1, pattern.length * cell - 1);
      x0 += pattern.length * cell + gap;
    });
    canvas.addEventListener('mousemove', (ev) => {
      const box = canvas.getBoundingClientRect();
      let x = ev.clientX - box.left;
      const q = Math.floor((ev.clientY - box.top) / cell);
      for (let b = 0; b < head.patterns.length; b++) {
        const w = sizes[b] * cell;
        if (x < w) {
          const k = Math.floor(x / cell), seq = data.sequences[b];
          if (k > q || q >= sizes[b]) break;
          tip.innerHTML = `query ${shown(seq.tokens[q])} \u2192 key ${shown(seq.tokens[k])}` +
              `<br>weight ${head.patterns[b][q][k].toFixed(3)}`;
          tip.style.display = 'block';
          tip.style.left = (ev.pageX + 14) + 'px';
          tip.style.top = (ev.pageY + 10) + 'px';
          return;
        }
        x -= w + gap;
      }
      tip.style.display = 'none';
    });
    canvas.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
  }
})();
