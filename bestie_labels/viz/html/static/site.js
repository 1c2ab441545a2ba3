// bestie HTML report: gallery sorting / filtering / paging and image-page navigation.
// Plain ES2017, no library; the data is window.BESTIE_SITE (data.js), so that the pages open
// from disk (file://) with no server.
(function () {
  "use strict";
  var S = window.BESTIE_SITE;
  var PAGE = 60;
  var KEYS = ["sort", "dir", "cls", "q", "col", "min", "max", "page"];

  function readState(hash) {
    var p = new URLSearchParams((hash || "").replace(/^#/, ""));
    var st = {};
    KEYS.forEach(function (k) { st[k] = p.get(k) || ""; });
    st.sort = st.sort || S.sort.key;
    st.dir = st.dir || "worst";
    st.page = parseInt(st.page || "0", 10) || 0;
    return st;
  }

  function writeState(st, keepPage) {
    var p = new URLSearchParams();
    KEYS.forEach(function (k) {
      var v = st[k];
      if (k === "page" && !keepPage) return;
      if (v !== "" && v !== null && v !== undefined && !(k === "page" && v === 0)) p.set(k, v);
    });
    return p.toString();
  }

  function column(key) {
    for (var i = 0; i < S.columns.length; i++) if (S.columns[i].key === key) return S.columns[i];
    return {key: key, worse: "low"};
  }

  // -1 / +1 multiplier: ascending or descending for a column and a direction.
  function sign(key, dir) {
    if (dir === "asc") return 1;
    if (dir === "desc") return -1;
    return column(key).worse === "high" ? -1 : 1;  // "worst" first
  }

  function compareBy(key, dir) {
    var s = sign(key, dir);
    return function (a, b) {
      var x = a[key], y = b[key];
      var xn = x === null || x === undefined, yn = y === null || y === undefined;
      if (xn || yn) return xn === yn ? 0 : (xn ? 1 : -1);  // no value: always last
      if (key === "id") return s * (x < y ? -1 : (x > y ? 1 : 0));
      return s * (x - y);
    };
  }

  function keep(st) {
    var cls = st.cls === "" ? null : parseInt(st.cls, 10);
    var lo = st.min === "" ? null : parseFloat(st.min);
    var hi = st.max === "" ? null : parseFloat(st.max);
    var q = st.q.toLowerCase();
    return function (r) {
      if (cls !== null && r.c.indexOf(cls) < 0) return false;
      if (q && r.id.toLowerCase().indexOf(q) < 0) return false;
      if (lo !== null || hi !== null) {
        var v = r[st.col || S.sort.key];
        if (v === null || v === undefined) return false;
        if (lo !== null && v < lo) return false;
        if (hi !== null && v > hi) return false;
      }
      return true;
    };
  }

  // The images of the current state, in its order (ties: the default's second key, then id).
  function order(st) {
    var first = compareBy(st.sort, st.dir);
    var second = compareBy(S.sort.then || "id", "worst");
    var byId = compareBy("id", "asc");
    return S.images.filter(keep(st)).sort(function (a, b) {
      return first(a, b) || second(a, b) || byId(a, b);
    });
  }

  function statText(r) {
    return S.columns.slice(0, 4).map(function (c) {
      var v = r[c.key];
      return c.label + " " + (v === null || v === undefined ? "-" : v);
    }).join(" \u00b7 ");
  }

  function card(r, hash) {
    var d = document.createElement("div");
    d.className = "card";
    d.setAttribute("data-id", r.id);
    var a = document.createElement("a");
    a.href = "pages/" + r.sid + ".html#" + hash;
    var img = document.createElement("img");
    img.src = "thumb/" + r.sid + ".jpg";
    img.loading = "lazy";
    img.alt = r.id;
    var t = document.createElement("div");
    t.className = "cid";
    t.textContent = r.id;
    var s = document.createElement("div");
    s.className = "cstats";
    s.textContent = statText(r);
    a.appendChild(img); a.appendChild(t); a.appendChild(s);
    d.appendChild(a);
    return d;
  }

  function gallery() {
    var ids = ["sort", "dir", "cls", "q", "col", "min", "max"];
    function render() {
      var st = readState(location.hash);
      ids.forEach(function (k) { var el = document.getElementById(k); if (el.value !== st[k]) el.value = st[k]; });
      if (!st.col) document.getElementById("col").value = S.sort.key;
      var rows = order(st);
      var pages = Math.max(1, Math.ceil(rows.length / PAGE));
      var page = Math.min(Math.max(0, st.page), pages - 1);
      var hash = writeState(st, false);
      var grid = document.getElementById("grid");
      grid.textContent = "";
      var frag = document.createDocumentFragment();
      rows.slice(page * PAGE, (page + 1) * PAGE).forEach(function (r) { frag.appendChild(card(r, hash)); });
      grid.appendChild(frag);
      document.getElementById("count").textContent = rows.length + " images" +
        (rows.length !== S.images.length ? " (of " + S.images.length + ")" : "");
      document.getElementById("page").textContent = "page " + (page + 1) + " of " + pages;
      document.getElementById("prev-page").disabled = page === 0;
      document.getElementById("next-page").disabled = page >= pages - 1;
    }
    function update(changes) {
      var st = readState(location.hash);
      Object.keys(changes).forEach(function (k) { st[k] = changes[k]; });
      location.hash = writeState(st, true);
    }
    ids.forEach(function (k) {
      var el = document.getElementById(k);
      el.addEventListener(el.tagName === "SELECT" ? "change" : "input", function () {
        var c = {page: 0}; c[k] = el.value; update(c);
      });
    });
    document.getElementById("prev-page").addEventListener("click", function () {
      update({page: readState(location.hash).page - 1});
    });
    document.getElementById("next-page").addEventListener("click", function () {
      update({page: readState(location.hash).page + 1});
    });
    window.addEventListener("hashchange", render);
    render();
  }

  function imagePage(sid) {
    var st = readState(location.hash);
    var rows = order(st);
    var i = rows.findIndex(function (r) { return r.sid === sid; });
    if (i < 0) {  // filtered out of that order: step through the default one
      st = readState("");
      rows = order(st);
      i = rows.findIndex(function (r) { return r.sid === sid; });
    }
    var hash = writeState(st, false);
    function link(id, r) {
      var a = document.getElementById(id);
      if (r) { a.href = r.sid + ".html#" + hash; a.classList.remove("off"); }
      else { a.removeAttribute("href"); a.classList.add("off"); }
    }
    link("prev", rows[i - 1]);
    link("next", rows[i + 1]);
    document.getElementById("position").textContent = (i + 1) + " of " + rows.length;
    var gal = document.getElementById("nav-gallery");
    st.page = Math.floor(i / PAGE);
    gal.href = "../gallery.html#" + writeState(st, true);
    document.addEventListener("keydown", function (e) {
      var t = e.key === "ArrowLeft" ? "prev" : (e.key === "ArrowRight" ? "next" : null);
      var a = t && document.getElementById(t);
      if (a && a.href) location.href = a.href;
    });
    document.querySelectorAll("#layers input[data-layer]").forEach(function (box) {
      box.addEventListener("change", function () {
        var name = box.getAttribute("data-layer");
        document.querySelectorAll("img.layer[data-layer='" + name + "']").forEach(function (img) {
          img.classList.toggle("hidden", !box.checked);
        });
      });
    });
  }

  window.BestieSite = {gallery: gallery, imagePage: imagePage, order: order, readState: readState};
})();
