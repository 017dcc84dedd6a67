#include "training/model_evaluation.h"

#include <torch/torch.h>

namespace compressm::training {

torch::Tensor batch_inputs(data::Batch& batch, const torch::Device& device) {
  const torch::Tensor host =
      torch::from_blob(batch.inputs.data(), {batch.size, batch.seq_len, batch.channels}, torch::kFloat);
  return device.is_cpu() ? host : host.to(device);
}

torch::Tensor batch_labels(const data::Batch& batch, const torch::Device& device) {
  return torch::from_blob(const_cast<int32_t*>(batch.labels.data()), {batch.size}, torch::kInt)
      .to(device, torch::kLong);
}


Accuracy evaluate_accuracy(nn::LruModel& model, const data::Dataset& split, int64_t batch_size) {
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const torch::Device device = model->device();
  Accuracy result;
  double loss_sum = 0.0;
  const data::SequentialBatches batches(split, batch_size);
  for (int64_t i = 0; i < batches.num_batches(); ++i) {
    data::Batch batch = batches.batch(i);
    const torch::Tensor logits = model->forward(batch_inputs(batch, device));
    const torch::Tensor labels = batch_labels(batch, device);
    result.correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
    loss_sum += torch::nn::functional::cross_entropy(
                    logits.to(torch::kFloat64), labels,
                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    result.count += batch.size;
  }
  result.accuracy = result.count > 0 ? static_cast<double>(result.correct) / result.count : 0.0;
  result.loss = result.count > 0 ? loss_sum / static_cast<double>(result.count) : 0.0;
  model->train(was_training);
  return result;
}

}  // namespace compressm::training
