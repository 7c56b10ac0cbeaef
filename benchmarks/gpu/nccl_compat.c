/* NCCL entry points that torch 2.14's libtorch_cuda.so links to and the GPU image's NCCL 2.28.9 lacks.
 *
 * torch 2.14 is built against NCCL 2.30.7; the image (torch 2.11) ships NCCL 2.28.9, whose libnccl.so.2 does
 * not export these 11 functions, so the dynamic loader refuses libtorch_cuda.so ("undefined symbol"). They
 * serve features a one-GPU vLLM engine never calls (communicator grow/suspend/resume, one-sided signals,
 * symmetric-memory windows), so stage.sh preloads this library instead of carrying NCCL 2.30.7 (196 MB):
 * each stub fails with ncclInternalError, so a call to one is an error, never a silent success.
 * List: `nm -D --undefined-only torch/lib/libtorch_cuda.so | grep nccl` minus NCCL 2.28.9's exports.
 */
#define STUB(name) int name(void) { return 3; /* ncclInternalError */ }
STUB(ncclCommGetUniqueId)
STUB(ncclCommGrow)
STUB(ncclCommMemStats)
STUB(ncclCommResume)
STUB(ncclCommSuspend)
STUB(ncclGetLsaMultimemDevicePointer)
STUB(ncclGetPeerDevicePointer)
STUB(ncclPutSignal)
STUB(ncclSignal)
STUB(ncclWaitSignal)
STUB(ncclWinGetUserPtr)
