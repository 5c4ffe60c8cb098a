// The parts of three.js the occ4d viewer uses; bundled by vendor_three.sh into three-occ4d.min.js.
export {
  AmbientLight, BoxGeometry, BufferGeometry, Color, ConeGeometry, DirectionalLight, Float32BufferAttribute,
  Group, InstancedMesh, Line, LineBasicMaterial, Matrix4, Mesh, MeshBasicMaterial, MeshLambertMaterial,
  PerspectiveCamera, Scene, WebGLRenderer,
} from 'three';
export { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';
