// Starts the dashboard on index.html, the page outside TensorBoard's iframe (handy for tests).
import {render} from '../index.js';

render();
