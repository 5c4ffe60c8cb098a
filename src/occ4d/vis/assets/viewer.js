// occ4d voxel viewer: reads the JSON payload in #occ4d-data and draws it with three.js (global THREE).
// URL hash parameters (also updated by the controls): t=<frame>, src=<source key>, view=bev|chase|orbit,
// mask=1 (only voxels inside the camera mask), hide=<class id>,<class id>...
(function () {
  'use strict';
  const body = document.body;
  const fail = (msg) => {
    body.dataset.status = 'error';
    body.dataset.error = String(msg);
    const el = document.getElementById('status');
    if (el) el.textContent = 'Error: ' + msg;
  };
  window.addEventListener('error', (e) => fail(e.message));
  // three.js reports shader and WebGL failures through console.error; surface them too.
  const consoleError = console.error.bind(console);
  console.error = (...args) => { fail(args.map(String).join(' ')); consoleError(...args); };
  window.addEventListener('unhandledrejection', (e) => fail(e.reason));

  const data = JSON.parse(document.getElementById('occ4d-data').textContent);
  const [NX, NY, NZ] = data.grid.shape;
  const [VX, VY, VZ] = data.grid.voxel;
  const [MX, MY, MZ] = data.grid.min;
  const T = data.frames;
  const ERROR_COLOURS = { correct: '#8fd18f', wrong: '#ff3030' };

  async function inflate(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // Decoded grids are cached: key "src:t" -> Uint8Array of NX*NY*NZ labels in [x][y][z] order.
  const grids = new Map();
  async function grid(src, t) {
    const key = src + ':' + t;
    if (!grids.has(key)) {
      if (src === 'mask') grids.set(key, await inflate(data.masks[t]));
      else if (src === 'error') {
        const [a, b] = [await grid(data.error_of[0], t), await grid(data.error_of[1], t)];
        const out = new Uint8Array(a.length).fill(255);
        for (let i = 0; i < a.length; i++) {
          if (a[i] !== data.free || b[i] !== data.free) out[i] = a[i] === b[i] ? 0 : 1;
        }
        grids.set(key, out);
      } else grids.set(key, await inflate(data.sources[src].frames[t]));
    }
    return grids.get(key);
  }

  // --- scene -------------------------------------------------------------------------------
  const view = document.getElementById('view');
  const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  view.appendChild(renderer.domElement);
  const scene = new THREE.Scene();
  scene.background = new THREE.Color('#28282e');
  scene.add(new THREE.AmbientLight(0xffffff, 1.6));
  const sun = new THREE.DirectionalLight(0xffffff, 1.8);
  sun.position.set(-30, 40, 80);
  scene.add(sun);
  const camera = new THREE.PerspectiveCamera(40, 1, 0.5, 2000);
  camera.up.set(0, 0, 1); // the ego frame is z-up (x forward, y left)
  const controls = new THREE.OrbitControls(camera, renderer.domElement);
  const half = Math.max(NX * VX, NY * VY) / 2;

  function setView(name) {
    const views = {
      // Straight down is OrbitControls' pole (yaw undefined); a hair behind keeps x pointing up.
      bev: [[-0.02 * half, 0, half * 3.6], [0, 0, 0]],
      chase: [[-0.45 * half, 0, 0.3 * half], [0.4 * half, 0, 0]],
      orbit: [[-1.3 * half, -1.3 * half, 1.2 * half], [0, 0, 0]],
    };
    const [p, f] = views[name] || views.orbit;
    camera.position.set(p[0], p[1], p[2]);
    controls.target.set(f[0], f[1], f[2]);
    controls.update();
  }

  const ego = new THREE.Group();
  const egoBody = new THREE.Mesh(new THREE.BoxGeometry(4.1, 1.85, 1.6),
    new THREE.MeshLambertMaterial({ color: 0xffffff }));
  egoBody.position.set(1.05, 0, 0.8);
  const nose = new THREE.Mesh(new THREE.ConeGeometry(0.8, 1.8, 12), new THREE.MeshBasicMaterial({ color: 0xff3c3c }));
  nose.rotation.z = -Math.PI / 2; // the cone points along +y by default; turn it to +x (ahead)
  nose.position.set(4.0, 0, 0.8);
  ego.add(egoBody, nose);
  scene.add(ego);

  const box = new THREE.BoxGeometry(VX, VY, VZ);
  const materials = new Map();
  function material(colour) {
    if (!materials.has(colour)) materials.set(colour, new THREE.MeshLambertMaterial({ color: colour }));
    return materials.get(colour);
  }

  // One InstancedMesh per class for the shown grid; rebuilt when the frame or source changes.
  let voxelGroup = null;
  let pathLine = null;
  const state = { t: 0, src: data.default_source, mask: false, hidden: new Set(), view: 'orbit' };

  let generation = 0; // a newer rebuild (slider dragged on) supersedes one still decoding
  async function rebuild() {
    const gen = ++generation;
    const labels = await grid(state.src, state.t);
    const mask = state.mask && data.masks ? await grid('mask', state.t) : null;
    if (gen !== generation) return;
    const classes = state.src === 'error'
      ? [{ id: 0, colour: ERROR_COLOURS.correct }, { id: 1, colour: ERROR_COLOURS.wrong }]
      : data.classes;
    const counts = new Map(classes.map((c) => [c.id, 0]));
    for (let i = 0; i < labels.length; i++) {
      const c = labels[i];
      if (counts.has(c) && (!mask || mask[i])) counts.set(c, counts.get(c) + 1);
    }
    const group = new THREE.Group();
    const m = new THREE.Matrix4();
    const filled = new Map();
    const meshes = new Map();
    for (const c of classes) {
      const n = counts.get(c.id);
      if (!n || (state.src !== 'error' && state.hidden.has(c.id))) continue;
      const mesh = new THREE.InstancedMesh(box, material(c.colour), n);
      meshes.set(c.id, mesh);
      filled.set(c.id, 0);
      group.add(mesh);
    }
    for (let i = 0; i < labels.length; i++) {
      const mesh = meshes.get(labels[i]);
      if (!mesh || (mask && !mask[i])) continue;
      const z = i % NZ, y = ((i - z) / NZ) % NY, x = Math.floor(i / (NY * NZ));
      m.makeTranslation(MX + (x + 0.5) * VX, MY + (y + 0.5) * VY, MZ + (z + 0.5) * VZ);
      const k = filled.get(labels[i]);
      mesh.setMatrixAt(k, m);
      filled.set(labels[i], k + 1);
    }
    if (voxelGroup) {
      scene.remove(voxelGroup);
      voxelGroup.children.forEach((c) => c.dispose());
    }
    voxelGroup = group;
    scene.add(group);
    drawPath();
    updateLegend(counts);
    render();
    // What is on screen, for links and automated checks: frame, source and voxels drawn.
    body.dataset.frame = String(state.t);
    body.dataset.source = state.src;
    body.dataset.voxels = String(group.children.reduce((n, mesh) => n + mesh.count, 0));
  }

  function drawPath() {
    if (pathLine) { scene.remove(pathLine); pathLine.geometry.dispose(); pathLine = null; }
    if (!data.trajectory || data.trajectory.length < 2) return;
    // Rows are poses in the clip's reference frame; show them in the current frame's ego frame.
    const [x0, y0, a0] = data.trajectory[state.t];
    const c = Math.cos(-a0), s = Math.sin(-a0);
    const pts = [];
    for (const [x, y] of data.trajectory) {
      const dx = x - x0, dy = y - y0;
      pts.push(c * dx - s * dy, s * dx + c * dy, 0.25);
    }
    const geom = new THREE.BufferGeometry();
    geom.setAttribute('position', new THREE.Float32BufferAttribute(pts, 3));
    pathLine = new THREE.Line(geom, new THREE.LineBasicMaterial({ color: 0xff3c3c }));
    scene.add(pathLine);
  }

  function render() {
    const w = view.clientWidth || 800, h = view.clientHeight || 600;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
    renderer.render(scene, camera);
  }
  controls.addEventListener('change', render);
  window.addEventListener('resize', render);

  // --- controls ------------------------------------------------------------------------------
  const slider = document.getElementById('time');
  const timeLabel = document.getElementById('time-label');
  const legend = document.getElementById('legend');
  const srcSel = document.getElementById('source');
  const maskBox = document.getElementById('mask');
  const viewSel = document.getElementById('camera');

  slider.max = String(T - 1);
  document.getElementById('time-row').style.display = T > 1 ? '' : 'none';
  for (const [key, s] of Object.entries(data.sources)) srcSel.add(new Option(s.label, key));
  if (data.error_of) srcSel.add(new Option('error (correct / wrong)', 'error'));
  srcSel.parentElement.style.display = srcSel.options.length > 1 ? '' : 'none';
  maskBox.parentElement.style.display = data.masks ? '' : 'none';

  function updateLegend(counts) {
    legend.innerHTML = '';
    const rows = state.src === 'error'
      ? [{ id: 0, name: 'correct', colour: ERROR_COLOURS.correct }, { id: 1, name: 'wrong', colour: ERROR_COLOURS.wrong }]
      : data.classes;
    for (const c of rows) {
      const row = document.createElement('label');
      row.className = 'cls';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.checked = !state.hidden.has(c.id) || state.src === 'error';
      box.disabled = state.src === 'error';
      box.dataset.cls = String(c.id);
      box.addEventListener('change', () => {
        if (box.checked) state.hidden.delete(c.id); else state.hidden.add(c.id);
        writeHash();
        rebuild();
      });
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.background = c.colour;
      row.append(box, sw, document.createTextNode(` ${c.name} (${counts.get(c.id) || 0})`));
      legend.appendChild(row);
    }
  }

  function timeText(t) {
    const dt = (t - data.current) / data.hz;
    return `t = ${dt >= 0 ? '+' : ''}${dt.toFixed(1)} s (frame ${t + 1}/${T})`;
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const t = parseInt(p.get('t') || String(state.t), 10);
    state.t = Math.min(Math.max(Number.isFinite(t) ? t : 0, 0), T - 1);
    const src = p.get('src');
    if (src && (src in data.sources || (src === 'error' && data.error_of))) state.src = src;
    state.mask = p.get('mask') === '1';
    state.hidden = new Set((p.get('hide') || '').split(',').filter((s) => s !== '').map(Number));
    const v = p.get('view');
    if (v && v !== state.view) { state.view = v; setView(v); }
    slider.value = String(state.t);
    timeLabel.textContent = timeText(state.t);
    srcSel.value = state.src;
    maskBox.checked = state.mask;
    viewSel.value = state.view;
  }

  function writeHash() {
    const p = new URLSearchParams({ t: String(state.t), src: state.src, view: state.view });
    if (state.mask) p.set('mask', '1');
    if (state.hidden.size) p.set('hide', [...state.hidden].join(','));
    history.replaceState(null, '', '#' + p.toString());
  }

  slider.addEventListener('input', () => {
    state.t = parseInt(slider.value, 10);
    timeLabel.textContent = timeText(state.t);
    writeHash();
    rebuild();
  });
  srcSel.addEventListener('change', () => { state.src = srcSel.value; writeHash(); rebuild(); });
  maskBox.addEventListener('change', () => { state.mask = maskBox.checked; writeHash(); rebuild(); });
  viewSel.addEventListener('change', () => { state.view = viewSel.value; setView(state.view); writeHash(); render(); });
  let timer = null;
  document.getElementById('play').addEventListener('click', (e) => {
    if (timer) { clearInterval(timer); timer = null; e.target.textContent = 'play'; return; }
    e.target.textContent = 'pause';
    timer = setInterval(() => {
      state.t = (state.t + 1) % T;
      slider.value = String(state.t);
      timeLabel.textContent = timeText(state.t);
      rebuild();
    }, 1000 / data.hz);
  });
  window.addEventListener('hashchange', () => { readHash(); rebuild(); });

  setView(state.view);
  readHash();
  rebuild().then(() => { body.dataset.status = body.dataset.status || 'ready'; });
})();
