// The demo's engine worker: the whole of it (the worker engine with the trainer, 'lorafleet/worker').
import 'lorafleet/worker';
