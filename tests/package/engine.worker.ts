// The worker file of consumer-browser.ts and of the Vite app the package test builds.
import 'lorafleet/worker';
