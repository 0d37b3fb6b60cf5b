import torch, sys
DT = torch.float64 if sys.argv[1] == "64" else torch.float32
torch.set_printoptions(precision=10)
p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5, 0.0], dtype=DT))
q = torch.nn.Parameter(torch.tensor([[0.3, -0.7], [1.1, 0.05]], dtype=DT))
opt = torch.optim.AdamW([p, q], lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
grads = [
  ([0.5, -1.5, 2.0, 0.0], [[0.1, 0.2], [-0.3, 0.4]]),
  ([-0.25, 0.75, 0.1, 1e-3], [[0.0, -0.2], [0.3, 2.0]]),
  ([3.0, 0.0, -0.5, 0.2], [[1.0, 1.0], [-1.0, 0.5]]),
]
for i, (gp, gq) in enumerate(grads):
  opt.zero_grad()
  p.grad = torch.tensor(gp, dtype=DT); q.grad = torch.tensor(gq, dtype=DT)
  tn = torch.nn.utils.clip_grad_norm_([p, q], max_norm=1.0)
  opt.step()
  print('step', i+1, 'norm', repr(tn.item()), 'p', [repr(v) for v in p.detach().tolist()], 'q', [repr(v) for v in q.detach().flatten().tolist()])
print(torch.__version__)
