// Package fit estimates the GPU memory vLLM needs to serve a checkpoint and
// says whether it fits on given GPUs, by how much, the longest context and
// the most full-length sequences that fit, and whether two copies fit side by
// side (for blue-green deploys).
//
// # How vLLM spends memory
//
// At startup each vLLM worker (one per tensor-parallel rank) loads its shard
// of the weights ("Model loading took X GiB"), runs one profile forward pass
// with max_num_batched_tokens dummy tokens and max_num_seqs sequences, and
// then, in determine_available_memory (vllm/v1/worker/gpu_worker.py; older:
// worker.py "Memory profiling results"), computes
//
//	budget       = gpu_memory_utilization × total GPU memory
//	KV available = budget − weights − peak activation − non-torch increase
//
// and logs "Available KV cache memory: Y GiB" (older: "the rest of the memory
// reserved for KV Cache is Y GiB", then "# GPU blocks: N" with N × 16 tokens
// per block). It refuses to start when free memory at startup is below the
// budget ("Free memory on device ... is less than desired GPU memory
// utilization"), and when the KV cache cannot hold ONE sequence of
// max_model_len ("To serve at least one request with the model's max seq len
// (X), (Y GiB KV cache is needed, which is larger than the available KV cache
// memory (Z GiB)"). CUDA graphs are captured after the KV cache is allocated
// (outside the budget up to vLLM 0.10; "Graph capturing finished in 5 secs,
// took 0.46 GiB").
//
// # The model (per GPU, bytes)
//
//	weights     = WeightBytes / TP                    (float32 checkpoints: /2, vLLM serves them in 16 bits;
//	                                                   GGUF: the quantized tensor bytes, vLLM keeps them quantized)
//	kv/token    = 2 × layers × max(1, ceil(kv_heads / TP)) × head_dim × kv_bytes
//	              kv_bytes: 2 (bf16/fp16; GGUF: fp16), 1 with --kv-cache-dtype fp8
//	kv minimum  = ceil(max_model_len / 16) × 16 × kv/token        (one sequence: the hard requirement)
//	kv full     = max_num_seqs × kv minimum                        (all sequences at full length)
//	activation  = max_num_batched_tokens × (hidden + intermediate/TP) × 8
//	              + min(max_num_seqs, batched) × vocab × 4         (fp32 logits of the sampled rows)
//	non-torch   = 360 MiB, + 1 GiB when TP > 1 (NCCL / custom all-reduce buffers)
//	required    = weights + non-torch + activation + kv minimum
//	comfortable = weights + non-torch + activation + kv full
//	budget      = gpu_memory_utilization × total memory of the smallest chosen GPU
//	free needed = budget + CUDA context (512 MiB) + CUDA graphs (768 MiB), on every GPU
//
// "Fits" means vLLM starts: required ≤ budget and every GPU has free needed
// free. The comfortable figure (max_num_seqs sequences all at max_model_len)
// is reported as FullConcurrency and MaxSeqsAtMaxLen, not required: vLLM
// itself only requires one full-length sequence, and real traffic rarely has
// every sequence at full length. Spare = budget − required; ShortBy is the
// larger of the budget shortfall and the free-memory shortfall.
//
// Two copies (blue-green): a copy started with gpu_memory_utilization =
// ceil(comfortable / total, 0.01) holds footprint = that × total + CUDA
// context + CUDA graphs. Two copies fit when 2 × footprint ≤ the free memory
// of every chosen GPU, which is also what the second copy's startup check
// needs (free ≥ its own budget after the first copy took its footprint).
// Lowering max_num_seqs or max_model_len shrinks the footprint.
//
// # Where the constants come from
//
// The activation factor (8 bytes per token per hidden+intermediate element)
// and the non-torch figure are fitted to published vLLM startup logs:
// Llama-3.1-8B bf16 on H100, 8192 batched tokens: "model weights take
// 14.99GiB; non_torch_memory takes 0.12GiB; PyTorch activation peak memory
// takes 1.19GiB; the rest of the memory reserved for KV Cache is 54.93GiB"
// (predicted activation 1.25 GiB); V1 logs show non-torch 0.05–0.35 GiB on
// one GPU and 0.55–1.96 GiB under TP (e.g. vllm-project/vllm#10909, "Memory
// profiling results: ... non_torch_memory=1.96GiB"). vLLM's own warning puts
// CUDA graphs at "1~3 GiB" (V0, 256 batch sizes); V1 logs show 0.4–0.8 GiB
// ("Estimated CUDA graph memory: 0.73 GiB total", vllm-project/vllm#39559).
// Newer vLLM releases with torch.compile report larger activation peaks
// (4.76 GiB for Llama-3.1-8B at 16k on H100), so predictions of available
// KV run up to ~7% high there; TestPublished records each comparison and
// its tolerance (±5% weights, ±10% available KV).
package fit
