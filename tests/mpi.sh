#!/usr/bin/env bash
# scorekit train, sample, likelihood and inpaint over MPI, against one
# process. Usage: mpi.sh
# CASE SCOREKIT MPIEXEC. CASE is one of
#   train    100 steps on 2 and on 3 ranks give the loss curve and weights of
#            1 rank to float rounding (1e-5 relative to the largest value);
#            2 ranks give the same bits run after run and whatever their
#            thread counts; a batch smaller than the ranks is refused
#   resume   a run checkpointed on 3 ranks continues on 1, and one on 1 on 2,
#            ending with the weights of a run that never stopped (1e-5)
#   sample   1, 2 and 3 ranks write byte-identical .npy files (a trajectory
#            too), with every sampler and with --class all; the ODE's
#            evaluations are counted over all of them; likelihood reports
#            the same on 1, 2 and 3, and inpaint writes the same bytes
#   failure  a rank whose data cannot be loaded ends the job at once with a
#            message naming it, before anything is written; a rank killed
#            (SIGKILL) mid-run ends the job (no hang) and the last checkpoint
#            resumes; SIGTERM to mpirun stops every rank after the same step
#            with a checkpoint that resumes
set -euo pipefail
case=$1; sk=$2; mpiexec=$3
py=/usr/bin/python3
# Open MPI refuses root without these; --oversubscribe: more ranks than cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# Under AddressSanitizer, Open MPI's own allocations alive at exit (many from
# plugins it has unloaded, so no name can suppress them) are not looked for in
# ranks; scorekit's single-process runs here still are.
mpi_env=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0")
mpirun() { local n=$1; shift; timeout 120 "${mpi_env[@]}" "$mpiexec" -np "$n" --oversubscribe "$@"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*" >&2; exit 1; }
# WHAT PREFIX COMMAND...: COMMAND --out PREFIX1.npy on one process (2
# threads) and on 2 and 3 ranks (1 thread each) writes the same bytes.
same_on_ranks() {
  local what=$1 out=$2
  shift 2
  OMP_NUM_THREADS=2 "$sk" "$@" --out "${out}1.npy" >/dev/null
  for n in 2 3; do
    OMP_NUM_THREADS=1 mpirun $n "$sk" "$@" --out "$out$n.npy" >/dev/null
    cmp "${out}1.npy" "$out$n.npy" || fail "$what on $n ranks writes other bits"
  done
  echo "  $what on 2 and 3 ranks: the bytes of 1"
}

# The largest difference between two runs' losses (log.csv) and weights
# (model.safetensors, every tensor), relative to the largest |value|;
# fails above the bound.
compare() {
  $py - "$1" "$2" "$3" <<'EOF'
import json, struct, sys, array
a, b, bound = sys.argv[1], sys.argv[2], float(sys.argv[3])
def losses(d):
    rows = [l.split(',') for l in open(d + '/log.csv').read().split('\n')[1:] if l]
    return [float(r[1]) for r in rows]
def weights(d):
    raw = open(d + '/model.safetensors', 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']
        out[k] = array.array('f', raw[8 + n + s:8 + n + e])
    return out
def rel(x, y):
    assert len(x) == len(y), (len(x), len(y))
    scale = max(abs(v) for v in x) or 1
    return max(abs(p - q) for p, q in zip(x, y)) / scale
la, lb = losses(a), losses(b)
wa, wb = weights(a), weights(b)
assert wa.keys() == wb.keys()
dl = rel(la, lb)
dw = max(rel(wa[k], wb[k]) for k in wa)
print(f"  {b} against {a}: {len(la)} losses {dl:.2g}, weights {dw:.2g} (relative)")
sys.exit(0 if len(la) == len(lb) and dl <= bound and dw <= bound else 1)
EOF
}

train=(train --data mog8 --n-data 2000 --hidden 64 --depth 2 --batch-size 100 --seed 3 --quiet)

case $case in
train)
  OMP_NUM_THREADS=2 "$sk" "${train[@]}" --steps 100 --out one >/dev/null
  for n in 2 3; do
    OMP_NUM_THREADS=1 mpirun $n "$sk" "${train[@]}" --steps 100 --out r$n >/dev/null
    compare one r$n 1e-5 || fail "$n ranks differ from 1"
  done
  # The gradient sum has a fixed order: the same bits again, and with
  # other thread counts.
  OMP_NUM_THREADS=2 mpirun 2 "$sk" "${train[@]}" --steps 100 --out again >/dev/null
  cmp r2/model.safetensors again/model.safetensors || fail "2 ranks: other bits on a second run"
  cmp <(cut -d, -f1-3 r2/log.csv) <(cut -d, -f1-3 again/log.csv) || fail "2 ranks: another loss curve"
  # The whole run in the job's output: rank 0's report only, once.
  OMP_NUM_THREADS=1 mpirun 2 "$sk" "${train[@]}" --steps 5 --out report > report.txt
  [ "$(grep -c '^final loss' report.txt)" = 1 ] || fail "the report is not printed once"
  grep -q '^MPI: 2 ranks; the gradient sum' report.txt || fail "no gradient-sum timing"
  if mpirun 3 "$sk" "${train[@]/100/2}" --steps 5 --out small 2> err.txt; then
    fail "a batch of 2 on 3 ranks was accepted"
  fi
  grep -q -- "--batch-size 2: fewer rows than the 3 ranks" err.txt || fail "$(cat err.txt)"
  [ ! -e small ] || fail "the refused run created its directory"
  ;;
resume)
  OMP_NUM_THREADS=2 "$sk" "${train[@]}" --steps 60 --out straight >/dev/null
  OMP_NUM_THREADS=1 mpirun 3 "$sk" "${train[@]}" --steps 25 --out a >/dev/null
  OMP_NUM_THREADS=2 "$sk" "${train[@]}" --steps 60 --resume a --out a >/dev/null
  compare straight a 1e-5 || fail "3 ranks then 1 differ from 1"
  OMP_NUM_THREADS=2 "$sk" "${train[@]}" --steps 25 --out b >/dev/null
  OMP_NUM_THREADS=1 mpirun 2 "$sk" "${train[@]}" --steps 60 --resume b --out b >/dev/null
  compare straight b 1e-5 || fail "1 rank then 2 differ from 1"
  ;;
sample)
  OMP_NUM_THREADS=2 "$sk" "${train[@]}" --steps 30 --out m >/dev/null
  # 1300 particles: chunks of 512, 512 and 276, split unevenly.
  s=(sample --model m/model.safetensors --n 1300 --steps-per-level 3 --denoise --seed 4)
  OMP_NUM_THREADS=2 "$sk" "${s[@]}" --out one.npy >/dev/null
  for n in 2 3; do
    OMP_NUM_THREADS=1 mpirun $n "$sk" "${s[@]}" --out r$n.npy >/dev/null
    cmp one.npy r$n.npy || fail "$n ranks sample other bits"
    echo "  sample on $n ranks: the bytes of 1"
  done
  # One chunk of 100 on 3 ranks: two of them sample nothing; rank 0, which
  # writes the trajectory, samples the chunk it follows.
  OMP_NUM_THREADS=2 "$sk" "${s[@]/1300/100}" --trajectory t1.npy --out small1.npy >/dev/null
  OMP_NUM_THREADS=1 mpirun 3 "$sk" "${s[@]/1300/100}" --trajectory t3.npy --out small3.npy >/dev/null
  cmp small1.npy small3.npy || fail "3 ranks sample other bits of one chunk"
  cmp t1.npy t3.npy || fail "3 ranks write another trajectory"
  # The predictor-corrector and ODE samplers split the same way.
  for smp in "pc --steps 4" "ode --rtol 1e-3 --atol 1e-3"; do
    read -r -a extra <<< "--sampler $smp"
    p=(sample --model m/model.safetensors --n 1300 --seed 4 "${extra[@]}")
    OMP_NUM_THREADS=2 "$sk" "${p[@]}" --out p1.npy >/dev/null
    OMP_NUM_THREADS=1 mpirun 3 "$sk" "${p[@]}" --out p3.npy >/dev/null
    cmp p1.npy p3.npy || fail "3 ranks sample other bits with --sampler $smp"
    echo "  --sampler ${smp%% *} on 3 ranks: the bytes of 1"
  done
  # The ODE's count of score evaluations: every rank's chunks, as on one.
  o=(sample --model m/model.safetensors --n 1300 --seed 4 --sampler ode --rtol 1e-3 --atol 1e-3)
  c1=$(OMP_NUM_THREADS=2 "$sk" "${o[@]}" --out o1.npy | grep "^ODE solved")
  c3=$(OMP_NUM_THREADS=1 mpirun 3 "$sk" "${o[@]}" --out o3.npy | grep "^ODE solved")
  [ -n "$c1" ] && [ "$c1" = "$c3" ] || fail "3 ranks count the ODE's evaluations otherwise: '$c3' against '$c1'"
  echo "  ODE on 3 ranks: $c3"
  # --class all: each class's chunks split over the ranks (8 classes of 700:
  # chunks of 512 and 188).
  OMP_NUM_THREADS=2 "$sk" "${train[@]}" --conditional --steps 30 --out c >/dev/null
  same_on_ranks "--class all" a sample --model c/model.safetensors --class all --guidance 2 \
    --n 700 --steps-per-level 2 --seed 5
  # Classes of one chunk (300): the 8 (class, chunk) pairs split 3, 3, 2.
  same_on_ranks "--class all, a chunk a class," b sample --model c/model.safetensors --class all \
    --guidance 2 --n 300 --steps-per-level 2 --seed 5
  # likelihood: each rank a share of the chunks (1300 points: 512, 512,
  # 276), rank 0 reports what one process does, evaluations included.
  l=(likelihood --model m/model.safetensors --data mog8 --n 1300 --probes 2 --rtol 1e-3 --atol 1e-3 --json)
  j1=$(OMP_NUM_THREADS=2 "$sk" "${l[@]}")
  for n in 2 3; do
    jn=$(OMP_NUM_THREADS=1 mpirun $n "$sk" "${l[@]}")
    [ -n "$j1" ] && [ "$j1" = "$jn" ] || fail "likelihood on $n ranks: '$jn' against '$j1'"
  done
  echo "  likelihood on 2 and 3 ranks: $j1"
  # inpaint: each rank a share of the rows' chunks, rank 0 writes.
  OMP_NUM_THREADS=2 "$sk" sample --model m/model.safetensors --n 1300 --steps-per-level 2 \
    --seed 6 --out known.npy >/dev/null
  same_on_ranks inpaint i inpaint --model m/model.safetensors --input known.npy \
    --mask-kind random:0.5 --seed 7 --steps 20
  ;;
failure)
  # Rank 1 cannot load its data: the job ends, naming rank 1 and the file.
  printf 'a,b\n1,2\n3,4\n5,6\n7,8\n' > good.csv
  rc=0
  mpirun 1 "$sk" train --data good.csv --steps 5 --batch-size 4 --out f --quiet : \
    -np 1 "$sk" train --data missing.csv --steps 5 --batch-size 4 --out f --quiet 2> err.txt || rc=$?
  [ $rc -ne 0 ] || fail "a job with a failed rank succeeded"
  [ $rc -ne 124 ] || fail "the job hung"
  grep -q "scorekit (rank 1 of 2): missing.csv: cannot open" err.txt || fail "$(cat err.txt)"
  [ ! -e f ] || fail "the failed job created its directory"
  echo "  a rank that cannot load its data ends the job: $(grep -m1 'rank 1 of 2' err.txt)"
  # Rank 1 killed once a checkpoint exists: the job ends, the checkpoint resumes.
  OMP_NUM_THREADS=1 "${mpi_env[@]}" "$mpiexec" -np 1 --oversubscribe "$sk" "${train[@]}" --steps 1000000 \
    --checkpoint-every 20 --out k : -np 1 sh -c "echo \$\$ > pid1; exec $sk ${train[*]} \
    --steps 1000000 --checkpoint-every 20 --out k" > /dev/null 2> kill.txt &
  job=$!
  for _ in $(seq 600); do [ -s k/state.safetensors ] && [ -s pid1 ] && break; sleep 0.1; done
  [ -s k/state.safetensors ] || fail "no checkpoint after 60 s"
  kill -KILL "$(cat pid1)"
  ended=0
  for _ in $(seq 600); do kill -0 $job 2>/dev/null || { ended=1; break; }; sleep 0.1; done
  if [ $ended = 0 ]; then kill -KILL $job; fail "the job went on after rank 1 was killed"; fi
  if wait $job; then fail "the job ended well after rank 1 was killed"; fi
  grep -q "rank 1" kill.txt || fail "no message naming rank 1: $(cat kill.txt)"
  last=$(awk -F, 'NR > 1 && NF == 4 { l = $1 } END { print l }' k/log.csv) # a kill can cut a line
  OMP_NUM_THREADS=2 "$sk" "${train[@]}" --steps $((last + 5)) --resume k --out k >/dev/null
  echo "  rank 1 killed after step $last: the job ended; the checkpoint resumed to step $((last + 5))"
  # SIGTERM to mpirun reaches every rank: they agree on the step to stop
  # after, rank 0 writes the checkpoint, and it resumes on 1 rank.
  OMP_NUM_THREADS=1 "${mpi_env[@]}" "$mpiexec" -np 2 --oversubscribe "$sk" "${train[@]}" \
    --steps 1000000 --checkpoint-every 20 --out t > /dev/null 2> term.txt &
  job=$!
  for _ in $(seq 600); do [ -s t/state.safetensors ] && break; sleep 0.1; done
  [ -s t/state.safetensors ] || fail "no checkpoint after 60 s"
  kill -TERM $job
  for _ in $(seq 600); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
  kill -0 $job 2>/dev/null && { kill -KILL $job; fail "the job went on after SIGTERM"; }
  wait $job && fail "the job ended well after SIGTERM"
  # A checkpoint written on the signal, or the one of that very step kept.
  # Every rank says so with the same step; mpirun, tearing the job down once
  # a rank has ended by the signal, may drop another rank's last line.
  at=$(sed -n 's/^scorekit (rank [01] of 2): interrupted by SIGTERM: \(saved a\|the\) checkpoint at step \([0-9]*\) .*/\2/p' term.txt | sort -u)
  [ -n "$at" ] || fail "no checkpoint on SIGTERM: $(cat term.txt)"
  [ "$(awk -F, 'NR > 1 && NF == 4 { l = $1 } END { print l }' t/log.csv)" = "$at" ] ||
    fail "the log does not end at the checkpoint's step $at"
  OMP_NUM_THREADS=2 "$sk" "${train[@]}" --steps $((at + 5)) --resume t --out t >/dev/null
  echo "  SIGTERM to mpirun: a checkpoint at step $at, resumed to step $((at + 5))"
  ;;
*)
  fail "unknown case $case"
  ;;
esac
