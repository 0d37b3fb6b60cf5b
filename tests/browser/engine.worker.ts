// The test page's engine worker: exactly what a user writes (README: browser + worker).
import 'lorafleet/worker';
