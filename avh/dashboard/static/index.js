// Entry point of the Activations dashboard: TensorBoard imports this module in the plugin's
// iframe and calls render(); index.html (the standalone page) does the same.
import {startDashboard} from './static/app.js';

export async function render() {
  // Data routes sit next to this module, whichever page loaded it.
  const base = new URL('.', import.meta.url);
  const style = document.createElement('link');
  style.rel = 'stylesheet';
  style.href = new URL('static/style.css', base).href;
  document.head.appendChild(style);
  await startDashboard(document.body, base);
}
