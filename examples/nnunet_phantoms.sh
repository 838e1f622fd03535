#!/usr/bin/env bash
# RAMP inside nnU-Net v2, end to end on CPU with SYNTHETIC phantoms:
# phantoms -> nnU-Net export -> plan/preprocess -> fold 0 = our split ->
# stock nnU-Net and nnUNetTrainerRAMP (tiny schedules) -> ramp-stress on both
# -> one report.
#
# Usage: examples/nnunet_phantoms.sh [WORK_FOLDER]   (default: nnunet-phantoms)
# Needs the nnunet extra:  pip install -c constraints.txt -e '.[nnunet]'
# The models train for a few dozen iterations only: the numbers show that the
# pipeline works, not what RAMP does for a real model.
set -euo pipefail

work="${1:-nnunet-phantoms}"
dataset_id="${RAMP_NNUNET_DATASET_ID:-501}"
dataset="Dataset${dataset_id}_RampTotalSegSynth"
mkdir -p "$work"
export nnUNet_raw="$work/nnUNet_raw"
export nnUNet_preprocessed="$work/nnUNet_preprocessed"
export nnUNet_results="$work/nnUNet_results"
# Small CPU: two processes for nnU-Net's exports (and two inference threads),
# data augmentation in the training process (nnUNet_n_proc_DA=0 below); the
# *_Tiny trainers train 2 epochs of 5 iterations (subclass them for more).
export nnUNet_def_n_proc="${nnUNet_def_n_proc:-2}"

# 1. Ten SYNTHETIC phantoms, exported as an nnU-Net raw dataset (seed-42 split:
#    7 train, 1 val, 2 test)
ramp-prep synth "$work/phantoms" --layout totalseg --subjects 10 --shape 40,40,32
ramp-prep totalseg "$work/phantoms" "$nnUNet_raw" --format nnunet \
    --dataset-id "$dataset_id" --no-progress

# 2. nnU-Net's own checks, planning and preprocessing, unchanged
nnUNetv2_plan_and_preprocess -d "$dataset_id" --verify_dataset_integrity \
    -c 3d_fullres -np 1

# 3. nnU-Net's fold 0 is our train/val split (planning already copied it;
#    the command checks it and is safe to re-run)
ramp-prep nnunet-splits "$dataset_id"

# 4. Make the RAMP trainers visible to nnUNetv2_train: nnU-Net's own
#    nnUNet_extTrainer where nnU-Net's trainer search works, else the
#    installed module (removed again at the end if this script installed it)
export nnUNet_extTrainer
nnUNet_extTrainer="$(python -m torchio_ramp.nnunet ext-path)"
if ! python -m torchio_ramp.nnunet check; then
    python -m torchio_ramp.nnunet install
    trap 'python -m torchio_ramp.nnunet uninstall' EXIT
fi

# 5. Stock nnU-Net and RAMP, same tiny schedule, stock command, CPU
for trainer in nnUNetTrainer_Tiny nnUNetTrainerRAMP_Tiny; do
    nnUNet_n_proc_DA=0 nnUNetv2_train "$dataset_id" 3d_fullres 0 -tr "$trainer" \
        -device cpu
done

# 6. Stress test both through nnU-Net's own predictor (one pass per window,
#    no test-time mirroring): clean + 13 families at level 0.2 on the 2 test
#    phantoms
for trainer in nnUNetTrainer_Tiny nnUNetTrainerRAMP_Tiny; do
    ramp-stress run \
        --nnunet "$nnUNet_results/$dataset/${trainer}__nnUNetPlans__3d_fullres" \
        --fold 0 --data "$nnUNet_raw/$dataset" --levels 0.2 \
        --out "$work/stress/$trainer" --no-progress
done

# 7. One report comparing them
ramp-stress report "$work/stress/nnUNetTrainer_Tiny" \
    "$work/stress/nnUNetTrainerRAMP_Tiny" --out "$work/report" \
    --baseline nnUNetTrainer_Tiny --resamples 200
echo "Report: $work/report/report.md"

# 8. The RAMP model as a stock nnUNetTrainer model folder: plain nnU-Net
#    predicts with it, without torchio-ramp installed
python -m torchio_ramp.nnunet export-model \
    "$nnUNet_results/$dataset/nnUNetTrainerRAMP_Tiny__nnUNetPlans__3d_fullres" \
    "$work/exported"
