// The paper's own Table 1 figures, for drawing beside ours where a study's task is the same task.
// Source: LoRKD (CVPR 2024), Table 1, MedMNIST block (705,689 images, 10 tasks; the paper's budget:
// a ResNet-50 foundation, ShuffleNetV2 experts, SGD 0.05 cosine for 100 epochs): test accuracy, %.
// Only the columns that a bundled task is a form of are kept; the others have no task of ours.

/** The paper's column per method (its method names as lorkd keys them). */
const MEDMNIST: Record<string, Record<string, number>> = {
  Retinal: { foundation: 77.4, stl: 78.4, mtl: 77.1, 'stl-kd': 77.1, 'mtl-kd': 75.2, 'moco-mtl': 69.8, 'aligned-mtl': 73.1, kf: 48.2, lorkd: 78.6 },
  Breast: { foundation: 84.62, stl: 85.26, mtl: 83.33, 'stl-kd': 83.33, 'mtl-kd': 83.26, 'moco-mtl': 76.92, 'aligned-mtl': 88.46, kf: 80.13, lorkd: 87.18 },
  Cell: { foundation: 50.37, stl: 96.81, mtl: 95.67, 'stl-kd': 96.52, 'mtl-kd': 95.94, 'moco-mtl': 86.55, 'aligned-mtl': 95.44, kf: 44.93, lorkd: 96.26 },
};

/** Which of the paper's MedMNIST columns a task of ours is (BloodMNIST is the blood task's MedMNIST form). */
const SAME_TASK: Record<string, string> = {
  retinamnist: 'Retinal',
  breastmnist: 'Breast',
  bloodmnist: 'Cell',
  bloodpbc: 'Cell',
};

export const PAPER_FIGURE_SOURCE = "the paper's Table 1, MedMNIST (705,689 images, 10 tasks, ResNet-50 foundation, 100 epochs): its budget, not this study's";

/**
 * The paper's MedMNIST accuracy (a fraction) of a method on the task, or null where the paper has no
 * such column or method. Method names are lorkd's keys; a rank suffix ("lorkd-r8") or a qualifier
 * ("foundation (task classes)") is read as the method itself.
 */
export function paperAccuracy(method: string, task: string): number | null {
  const column = SAME_TASK[task.toLowerCase()];
  if (!column) return null;
  const base = /^([a-z-]+?)(?:-r\d+)?(?:\s.*)?$/.exec(method)?.[1] ?? method;
  const v = MEDMNIST[column]![base];
  return v === undefined ? null : v / 100;
}
