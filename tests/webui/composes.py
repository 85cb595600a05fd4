"""Compose files for the Web UI tests, all on the embedded model, greedy and
short so that runs take a fraction of a second."""

CHAT = """
    controller:
      api_key: secret-key-123
    workflow:
      title: Greedy chat
      description: A short, *greedy* answer.
      job:
        input: ${input}
        output:
          generated: ${output}
    component:
      type: model
      task: chat-completion
      model: HuggingFaceTB/SmolLM2-135M-Instruct
      action:
        messages:
          - role: system
            content: ${input.system_prompt | "You are a helpful assistant."}
          - role: user
            content: ${input.user_prompt}
        max_output_length: ${input.max_tokens as integer | 12}
        params:
          do_sample: false
"""

BATCH = """
    workflow:
      title: Batch
      jobs:
        - id: generate
          repeat_count: ${input.batch_size as integer | 2}
          input:
            prompt: ${input.prompts[${index}]}
    component:
      type: model
      task: text-generation
      model: HuggingFaceTB/SmolLM2-135M-Instruct
      text: ${input.prompt as text}
      params:
        max_output_length: 4
        do_sample: false
"""

TWO_WORKFLOWS = """
    workflows:
      - id: chat
        title: Chat
        job:
          component: chat
      - id: text
        title: Continue text
        default: true
        job:
          component: text
    components:
      - id: chat
        type: model
        task: chat-completion
        model: HuggingFaceTB/SmolLM2-135M-Instruct
        action:
          messages:
            - role: user
              content: ${input.question}
          max_output_length: 8
          params:
            temperature: ${input.temperature as number | 0.0}
      - id: text
        type: model
        task: text-generation
        model: HuggingFaceTB/SmolLM2-135M-Instruct
        n_threads: 1
        text: ${input.prompt}
        max_output_length: 8
"""

# A reasoning model's output from a model that does not reason: the prompt
# ends inside an open `<think>` block (a prefill: the engine continues a final
# assistant message), so the output starts as reasoning; the budget closes
# the block after 4 tokens and the model answers.
THINKING = """
    workflow:
      title: Think first
      job:
        input: ${input}
        output:
          generated: ${output}
    component:
      type: model
      task: chat-completion
      model: HuggingFaceTB/SmolLM2-135M-Instruct
      reasoning_budget: 4
      action:
        messages:
          - role: user
            content: ${input.question}
          - role: assistant
            content: "<think>\\n"
        max_output_length: 24
        params:
          do_sample: false
"""
