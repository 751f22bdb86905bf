// memtrace report: the flame graph, drawn from the JSON in #fg-data.
// Data: {frames: [[name, location, source|null, system], ...],
//        views: [{name, title, bytes, blocks, dropped, tree: [frame, bytes, blocks, [children]]}]}
// (frame -1 is the root). Only boxes at least a pixel wide are made, so a
// tree of any size draws in a few thousand elements. When everything is
// drawn, an element #report-ready is added (tests wait for it); any error
// shows a red line at the top of the page (#report-error).
(function () {
  'use strict';
  var ROW = 20;

  function fail(msg) {
    var e = document.getElementById('report-error');
    if (!e) {
      e = document.createElement('div');
      e.id = 'report-error';
      e.className = 'error';
      document.body.insertBefore(e, document.body.firstChild);
    }
    e.textContent = 'The report\'s script failed: ' + msg;
  }
  window.addEventListener('error', function (ev) { fail(ev.message); });

  function bytes(v) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(Math.round(v)) : v.toFixed(1).replace(/\.0$/, '')) + ' ' + u[i];
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // [f, bytes, blocks, kids] arrays to objects with parent links.
  function build(a, parent, depth, stats) {
    var n = { f: a[0], b: a[1], c: a[2], kids: [], parent: parent, depth: depth };
    stats.count++;
    if (depth > stats.depth) stats.depth = depth;
    for (var i = 0; i < a[3].length; i++) n.kids.push(build(a[3][i], n, depth + 1, stats));
    return n;
  }

  function hue(name, system) {
    var h = 0;
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    if (system) return 'hsl(' + (200 + h % 30) + ',45%,' + (72 + h % 10) + '%)';
    return 'hsl(' + (8 + h % 40) + ',' + (70 + h % 20) + '%,' + (62 + (h >> 8) % 12) + '%)';
  }

  function init() {
    var data = JSON.parse(document.getElementById('fg-data').textContent);
    var frames = data.frames;
    var host = document.getElementById('flamegraph');
    host.textContent = '';
    var bar = el('div', 'fg-bar');
    var views = [], buttons = [];
    data.views.forEach(function (v, i) {
      var stats = { count: 0, depth: 0 };
      views.push({ meta: v, root: build(v.tree, null, 0, stats), stats: stats });
      var b = el('button', 'fg-view', v.title);
      b.type = 'button';
      b.addEventListener('click', function () { show(i); });
      buttons.push(b);
      bar.appendChild(b);
    });
    var search = el('input');
    search.type = 'search';
    search.placeholder = 'Search functions and files';
    search.className = 'fg-search';
    var reset = el('button', 'fg-reset', 'Reset zoom');
    reset.type = 'button';
    var status = el('span', 'fg-status');
    bar.appendChild(search);
    bar.appendChild(reset);
    bar.appendChild(status);
    var canvas = el('div', 'fg-canvas');
    var details = el('div', 'fg-details', 'Point at a box to see its frame.');
    host.appendChild(bar);
    host.appendChild(canvas);
    host.appendChild(details);

    var cur = 0, zoom = null, term = '';

    function name(n) {
      return n.f < 0 ? 'all (' + views[cur].meta.title + ')' : frames[n.f][0];
    }
    // The box's text: the function, and its line (a function can appear
    // once per line it calls from).
    function label(n) {
      if (n.f < 0) return name(n);
      var loc = frames[n.f][1];
      return frames[n.f][0] + ' (' + loc.slice(loc.lastIndexOf('/') + 1) + ')';
    }
    function matches(n) {
      if (!term || n.f < 0) return false;
      var fr = frames[n.f];
      return fr[0].toLowerCase().indexOf(term) >= 0 || fr[1].toLowerCase().indexOf(term) >= 0;
    }
    function describe(n) {
      var total = views[cur].root.b || 1;
      details.textContent = '';
      var head = name(n);
      if (n.f >= 0) head += '  —  ' + frames[n.f][1];
      details.appendChild(el('div', 'fg-what', head));
      details.appendChild(el('div', 'fg-size', bytes(n.b) + ' (' + (100 * n.b / total).toFixed(2) +
        '% of the view), ' + n.c + (n.c === 1 ? ' block' : ' blocks')));
      if (n.f >= 0 && frames[n.f][2]) details.appendChild(el('code', null, frames[n.f][2]));
    }

    function draw() {
      var v = views[cur];
      var W = canvas.clientWidth || 1000;
      canvas.textContent = '';
      var made = 0, maxDepth = 0;
      var top = zoom || v.root;
      function box(n, x, w, anc) {
        var d = el('div', 'fg-node' + (anc ? ' anc' : '') + (matches(n) ? ' match' : ''));
        d.style.left = x.toFixed(1) + 'px';
        d.style.width = Math.max(w, 1).toFixed(1) + 'px';
        d.style.top = (n.depth * ROW) + 'px';
        d.style.background = n.f < 0 ? '#d8dce2' : hue(frames[n.f][0], frames[n.f][3]);
        if (w > 28) d.textContent = label(n);
        d.addEventListener('mouseenter', function () { describe(n); });
        d.addEventListener('click', function () {
          zoom = (n === zoom || n.f < 0) ? (n.f < 0 ? null : n.parent) : n;
          if (zoom && zoom.f < 0) zoom = null;
          draw();
        });
        canvas.appendChild(d);
        made++;
        if (n.depth > maxDepth) maxDepth = n.depth;
      }
      function sub(n, x, w) {
        if (w < 0.8) return;
        box(n, x, w, false);
        var cx = x;
        for (var i = 0; i < n.kids.length; i++) {
          var k = n.kids[i];
          var kw = n.b > 0 ? w * k.b / n.b : 0;
          sub(k, cx, kw);
          cx += kw;
        }
      }
      for (var a = top.parent; a; a = a.parent) box(a, 0, W, true);
      sub(top, 0, W);
      canvas.style.height = ((maxDepth + 1) * ROW + 2) + 'px';
      canvas.setAttribute('data-boxes', String(made));
      return made;
    }

    function updateStatus() {
      var v = views[cur], total = v.root.b || 1;
      var parts = [bytes(v.root.b) + ' in ' + v.root.c + ' blocks'];
      if (v.meta.dropped > 0) {
        parts.push(v.meta.dropped + (v.meta.dropped === 1 ? ' frame' : ' frames') +
          ' under 0.01% of the view left out');
      }
      if (term) {
        var hit = 0, nhit = 0;
        (function walk(n) {
          if (matches(n)) { hit += n.b; nhit++; return; }
          n.kids.forEach(walk);
        })(v.root);
        parts.push(nhit + (nhit === 1 ? ' matching frame: ' : ' matching frames: ') + bytes(hit) + ' (' + (100 * hit / total).toFixed(1) + '%)');
      }
      status.textContent = parts.join(' · ');
    }

    function show(i) {
      cur = i;
      zoom = null;
      buttons.forEach(function (b, j) { b.className = 'fg-view' + (j === i ? ' on' : ''); });
      draw();
      updateStatus();
    }

    search.addEventListener('input', function () {
      term = search.value.trim().toLowerCase();
      draw();
      updateStatus();
    });
    reset.addEventListener('click', function () { zoom = null; draw(); });
    var pending = 0;
    window.addEventListener('resize', function () {
      clearTimeout(pending);
      pending = setTimeout(draw, 100);
    });

    // Driven by the tests (report.html#fg-selftest): zoom into the first
    // box under the root's widest child, zoom out, search, and record what
    // the page showed in #fg-selftest.
    function selftest() {
      var out = el('div');
      out.id = 'fg-selftest';
      out.hidden = true;
      var target = views[cur].root.kids[0] && views[cur].root.kids[0].kids[0];
      var box = null;
      Array.prototype.forEach.call(canvas.children, function (b) {
        if (target && !box && b.textContent === label(target)) box = b;
      });
      if (box) {
        box.dispatchEvent(new MouseEvent('click', { bubbles: true }));
        var full = Array.prototype.filter.call(canvas.children, function (b) {
          return !/\banc\b/.test(b.className) && b.textContent === label(target);
        })[0];
        out.setAttribute('data-zoomed', full ? full.textContent : '');
        out.setAttribute('data-zoomed-width', full ? full.style.width : '');
        out.setAttribute('data-ancestors', String(canvas.querySelectorAll('.fg-node.anc').length));
      }
      reset.click();
      out.setAttribute('data-after-reset', String(canvas.querySelectorAll('.fg-node.anc').length));
      search.value = 'cache_';
      search.dispatchEvent(new Event('input'));
      out.setAttribute('data-matches', String(canvas.querySelectorAll('.fg-node.match').length));
      out.setAttribute('data-status', status.textContent);
      search.value = '';
      search.dispatchEvent(new Event('input'));
      document.body.appendChild(out);
    }

    if (views.length === 0) {
      canvas.appendChild(el('p', 'missing', 'No blocks to draw.'));
    } else {
      show(0);
    }
    if (location.hash === '#fg-selftest') selftest();
    var ready = el('div');
    ready.id = 'report-ready';
    ready.hidden = true;
    ready.setAttribute('data-views', String(views.length));
    ready.setAttribute('data-boxes', canvas.getAttribute('data-boxes') || '0');
    document.body.appendChild(ready);
  }

  try {
    init();
  } catch (e) {
    fail(String(e && e.stack ? e.stack : e));
    throw e;
  }
})();
