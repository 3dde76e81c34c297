import '@xterm/xterm/css/xterm.css';
import './app.css';
import { mount } from 'svelte';
import App from './App.svelte';
import { connectBridge } from './lib/bridge';
import { HitchClient } from '../../preload/client';

const target = document.getElementById('app')!;
const bridge = connectBridge();
mount(App, { target, props: { client: bridge.ok ? new HitchClient(bridge.bridge) : null, startupError: bridge.ok ? null : bridge.error } });
